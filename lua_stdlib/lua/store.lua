-- The `store` module: key-value stores by entry id, each call checked against the caller's context.
--   store.get(id) -> s, err      (store.get on the store id)
--   s:get(k) -> v | nil, err(NOT_FOUND); s:set(k, v, ttl_seconds?) -> true; s:has(k); s:delete(k) -> bool
--   s:entry(k) -> {key, value, version}; s:put(k, v, {ttl, only_if_absent | if_version}) -> entry
--   s:list{prefix, after, limit} -> {items, cursor, has_more}; s:info(); s:release()
-- Keys are checked as store.key.get/set/delete/has/list on the key. Values are copies.
-- Loaded with (host bridge, errors, security lib).

local B, errors, sec = ...
local check = sec.check
local setmetatable, type, tostring = setmetatable, type, tostring

local Store = { __name = "store", __metatable = false }
Store.__index = Store

local function key_of(k, what)
    if type(k) ~= "string" or k == "" then return nil, errors._make("INVALID", what .. ": key must be a non-empty string") end
    return k, nil
end

local function guarded(action, fn)
    return function(self, k, ...)
        local key, bad = key_of(k, "store:" .. action)
        if bad then return nil, bad end
        local denied = check("store.key." .. action, key)
        if denied then return nil, denied end
        return fn(self._id, key, ...)
    end
end

Store.get = guarded("get", B.get)
Store.entry = guarded("get", B.entry)
Store.has = guarded("has", B.has)
Store.delete = guarded("delete", B.delete)
Store.set = guarded("set", B.set)
Store.put = guarded("set", B.put)
function Store:list(opts)
    local denied = check("store.key.list", (type(opts) == "table" and opts.prefix) or "*")
    if denied then return nil, denied end
    return B.list(self._id, opts)
end
function Store:info() return B.info(self._id) end
function Store:release() return true end

local M = {}
function M.get(id)
    if type(id) ~= "string" then return nil, errors._make("INVALID", "store.get: expected a store id") end
    local denied = check("store.get", id)
    if denied then return nil, denied end
    local ok, err = B.exists(id)
    if not ok then return nil, err end
    return setmetatable({ _id = id }, Store), nil
end
return M
