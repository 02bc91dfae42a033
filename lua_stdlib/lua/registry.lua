-- The `registry` module: Wippy's registry API on the event-sourced registry.
--   registry.get(id) -> entry, err; registry.find(filter) -> entries, err; registry.parse_id(s)
--   registry.snapshot() / snapshot_at(v) -> Snapshot (:entries :get :find :namespace :version :changes)
--   Snapshot:changes() -> Changes (:create :update :delete :ops :apply -> Version, err)
--   registry.current_version() / versions() / history() / apply_version(v) / build_delta(from, to)
--   Version: :id() :string() :previous() :next()
-- Every apply is a registry version on the log, authored by the task's actor (or the calling entry).
-- Permissions: registry.get (entry id; find only returns what may be read), registry.apply (each
-- changed entry id), registry.apply_version (the version); a denied change is put on the audit stream.
-- Loaded with (host bridge, errors, readonly, getinfo, security lib).

local B, errors, readonly, getinfo, sec = ...
local check = sec.check
local setmetatable, type, tostring, error, ipairs = setmetatable, type, tostring, error, ipairs

local function caller_entry()
    -- chunks are compiled with "=<entry id>" as their name: the first such frame is the caller
    for level = 3, 12 do
        local info = getinfo(level, "S")
        if info == nil then break end
        local src = info.source
        if src and src:sub(1, 1) == "=" and src:find(":", 2, true) then return src:sub(2) end
    end
    return nil
end

local function visible(list)
    if list == nil or not sec.active() then return list end -- no actor/scope: nothing to filter
    local out = {}
    for _, e in ipairs(list) do
        if check("registry.get", e.id) == nil then out[#out + 1] = e end
    end
    return out
end

local function actor_id()
    local a = sec.module.actor()
    return a and a:id() or nil
end

local function deny(denied, action, resource, caller)
    B.audit(action, resource, actor_id(), caller, denied:message())
    return nil, denied
end

local Version = {}
Version.__index = Version
Version.__name = "registry.version"
local function version(id) return setmetatable({ _id = id }, Version) end
function Version:id() return self._id end
function Version:string() return "v" .. tostring(self._id) end
function Version:__tostring() return "v" .. tostring(self._id) end
function Version.__eq(a, b) return a._id == b._id end
function Version:previous()
    local p = B.previous_version(self._id)
    if p == nil then return nil end
    return version(p)
end
function Version:next()
    local n = B.next_version(self._id)
    if n == nil then return nil end
    return version(n)
end

local function vid(v)
    if type(v) == "table" and getmetatable(v) == Version then return v._id end
    if type(v) == "number" then return v end
    if type(v) == "string" then return tonumber(v:match("^v?(%d+)$")) end
    return nil
end

local Changes = {}
Changes.__index = Changes
Changes.__name = "registry.changes"
local function changes() return setmetatable({ _ops = {} }, Changes) end

local function entry_arg(e, what)
    if type(e) ~= "table" then error(what .. ": expected an entry table {id, kind, meta, data}", 3) end
    return e
end

function Changes:create(e)
    self._ops[#self._ops + 1] = { op = "create", entry = entry_arg(e, "changes:create") }
    return self
end
function Changes:update(e)
    self._ops[#self._ops + 1] = { op = "update", entry = entry_arg(e, "changes:update") }
    return self
end
function Changes:delete(id)
    if type(id) == "table" then id = tostring(id.ns) .. ":" .. tostring(id.name) end
    if type(id) ~= "string" then error("changes:delete: expected 'ns:name' or {ns, name}", 2) end
    self._ops[#self._ops + 1] = { op = "delete", id = id }
    return self
end
function Changes:ops()
    local out = {}
    for i, o in ipairs(self._ops) do
        out[i] = { kind = "entry." .. o.op, entry = o.entry or { id = o.id } }
    end
    return out
end
function Changes:apply()
    if #self._ops == 0 then
        return nil, errors._make("INVALID", "changes:apply: no changes to apply")
    end
    local caller = caller_entry()
    for _, o in ipairs(self._ops) do
        local id = o.id or (type(o.entry) == "table" and o.entry.id) or "?"
        local denied = check("registry.apply", tostring(id))
        if denied then return deny(denied, "registry.apply", tostring(id), caller) end
    end
    local v, err = B.apply(self._ops, caller, actor_id())
    if v == nil then return nil, err end
    return version(v), nil
end

local Snapshot = {}
Snapshot.__index = Snapshot
Snapshot.__name = "registry.snapshot"
local function snapshot(v) return setmetatable({ _version = v }, Snapshot) end
function Snapshot:version() return version(self._version) end
function Snapshot:changes() return changes() end
function Snapshot:entries() local l, e = B.entries_at(self._version, nil) return visible(l), e end
function Snapshot:find(filter) local l, e = B.entries_at(self._version, filter) return visible(l), e end
function Snapshot:get(id)
    local denied = check("registry.get", tostring(id))
    if denied then return nil, denied end
    return B.get_at(self._version, id)
end
function Snapshot:namespace(ns) local l, e = B.entries_at(self._version, { [".ns"] = ns }) return visible(l), e end

local History = {}
History.__index = History
History.__name = "registry.history"
function History:versions() return B.versions(version) end
function History:get_version(id)
    local n = vid(id)
    if n == nil or not B.version_exists(n) then
        return nil, errors._make("NOT_FOUND", "registry version " .. tostring(id) .. " does not exist")
    end
    return version(n), nil
end
function History:snapshot_at(v)
    local n = vid(v)
    if n == nil then return nil, errors._make("INVALID", "snapshot_at: expected a version") end
    return snapshot(n), nil
end

local M = {}
function M.get(id)
    local denied = check("registry.get", tostring(id))
    if denied then return nil, denied end
    return B.get(id)
end
function M.find(filter)
    local list, err = B.find(filter)
    if list == nil then return nil, err end
    return visible(list), nil
end
function M.parse_id(s)
    if type(s) ~= "string" then return nil, errors._make("INVALID", "parse_id: expected a string") end
    local ns, name = s:match("^([^:]+):([^:]+)$")
    if ns == nil then return nil, errors._make("INVALID", "parse_id: " .. s .. " is not 'namespace:name'") end
    return { ns = ns, name = name }, nil
end
function M.snapshot() return snapshot(B.current_version()), nil end
function M.snapshot_at(v)
    local n = vid(v)
    if n == nil then return nil, errors._make("INVALID", "snapshot_at: expected a version") end
    if not B.version_exists(n) then
        return nil, errors._make("NOT_FOUND", "registry version " .. tostring(v) .. " does not exist")
    end
    return snapshot(n), nil
end
function M.current_version() return version(B.current_version()), nil end
function M.versions() return B.versions(version) end
function M.history() return setmetatable({}, History), nil end
function M.apply_version(v)
    local n = vid(v)
    if n == nil then return nil, errors._make("INVALID", "apply_version: expected a version") end
    local caller = caller_entry()
    local denied = check("registry.apply_version", tostring(n))
    if denied then return deny(denied, "registry.apply_version", tostring(n), caller) end
    return B.apply_version(n, caller, actor_id())
end
function M.build_delta(from, to) return B.build_delta(from, to) end

return M
