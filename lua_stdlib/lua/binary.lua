-- Lua strings that are not UTF-8 text, on their way to the host. lupa hands a Lua string to
-- Python decoded as UTF-8 and fails on any other bytes, so such strings cross as Raw host objects
-- instead: their bytes are mapped one to one onto U+0000..U+00FF (valid text), and `raw` maps
-- them back. Text, the common case, crosses untouched.
-- Loaded with (raw, is_error, errors); returns {wrap, host_copy, guard}.

local raw, is_error, errors = ...
local type, pcall, error, pairs, tostring = type, pcall, error, pairs, tostring
local find, gsub, char = string.find, string.gsub, string.char
local utf8len, utf8char = utf8.len, utf8.char
local pack, unpack = table.pack, table.unpack

local WIDE = {}
for b = 128, 255 do WIDE[char(b)] = utf8char(b) end

local function crossing(v)
    if type(v) == "string" and not utf8len(v) then return raw((gsub(v, "[\128-\255]", WIDE))) end
    return v
end

local function all_crossing(...)
    local args = pack(...)
    for i = 1, args.n do args[i] = crossing(args[i]) end
    return unpack(args, 1, args.n)
end

-- lupa raises the Python exception itself (userdata) when it cannot decode an argument
local function undecodable(e)
    local t = type(e)
    if t == "userdata" then e = tostring(e) elseif t ~= "string" then return false end
    return find(e, "codec can't decode", 1, true) ~= nil
end

local B = {}

-- `fn` (a host function returning at most two values) callable with binary strings: the call is
-- tried as is (the fast path: text, or no strings) and repeated with Raw arguments when lupa could
-- not decode one.
function B.wrap(fn)
    return function(...)
        local ok, a, b = pcall(fn, ...)
        if ok then return a, b end
        if undecodable(a) then
            return fn(all_crossing(...))
        end
        error(a, 0)
    end
end

-- A copy of a value whose binary strings (keys and values, at any depth) are Raw objects, for the
-- host to read tables that hold binary data. Error objects are kept; past `limit` levels the
-- original table is kept (the host reports the depth).
local function host_copy(v, depth, limit)
    local t = type(v)
    if t == "string" then return crossing(v) end
    if t ~= "table" or depth > limit or is_error(v) then return v end
    local out = {}
    for k, x in pairs(v) do out[crossing(k)] = host_copy(x, depth + 1, limit) end
    return out
end

-- `fn` (a host function that reads strings as text) with binary strings refused clearly: when lupa
-- cannot decode an argument (at any depth of a table), the call gives an INVALID error naming
-- `label`: returned in position `errpos` (after errpos - 1 nils), or raised when errpos is nil.
local function settle(label, errpos, ok, ...)
    if ok then return ... end
    local e = ...
    if not undecodable(e) then error(e, 0) end
    local err = errors._make("INVALID", label .. ": strings must be UTF-8 text, not binary data", false)
    if errpos == nil then error(err, 0) end
    if errpos == 2 then return nil, err end
    if errpos == 3 then return nil, nil, err end
    return err
end

function B.guard(fn, label, errpos)
    return function(...)
        return settle(label, errpos, pcall(fn, ...))
    end
end

function B.host_copy(v, limit)
    return host_copy(v, 0, limit or 200)
end

return B
