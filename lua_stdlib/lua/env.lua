-- The `env` module: env variables of the node's env registry (see services/_env.py).
--   env.get(name) -> value | nil, err        NOT_FOUND: no such variable, or unset without a default
--   env.set(name, value) -> true | nil, err  PERMISSION_DENIED: a read-only variable or storage
--   env.get_all() -> {name = value}          what the storages hold and every variable's value
-- A name is a variable's public name or its entry id; a bare name also finds a variable in the
-- caller's namespace. Permissions: env.get / env.set on the name; get_all keeps the names env.get
-- allows. Loaded with (host bridge, errors, getinfo, security lib).

local B, errors, getinfo, sec = ...
local check = sec.check
local type, tostring = type, tostring

local function caller_ns()
    -- chunks are compiled with "=<entry id>" as their name: the first such frame is the caller
    for level = 3, 12 do
        local info = getinfo(level, "S")
        if info == nil then break end
        local src = info.source
        if src and src:sub(1, 1) == "=" then
            local colon = src:find(":", 2, true)
            if colon then return src:sub(2, colon - 1) end
        end
    end
    return nil
end

local function name_of(name, fn)
    local t = type(name)
    if t == "number" then name = tostring(name) elseif t ~= "string" then
        return nil, errors._make("INVALID", fn .. ": the name must be a string, got " .. t)
    end
    if name == "" then return nil, errors._make("INVALID", fn .. ": empty key") end
    return name, nil
end

local M = {}

function M.get(name)
    local key, bad = name_of(name, "env.get")
    if bad then return nil, bad end
    local denied = check("env.get", key)
    if denied then return nil, denied end
    return B.get(key, caller_ns())
end

function M.set(name, value)
    local key, bad = name_of(name, "env.set")
    if bad then return nil, bad end
    local t = type(value)
    if t == "number" then value = tostring(value) elseif t ~= "string" then
        return nil, errors._make("INVALID", "env.set: the value must be a string, got " .. t)
    end
    local denied = check("env.set", key)
    if denied then return nil, denied end
    return B.set(key, value, caller_ns())
end

function M.get_all()
    local all, err = B.all()
    if all == nil then return nil, err end
    if not sec.active() then return all, nil end
    local out = {}
    for k, v in pairs(all) do
        if check("env.get", k) == nil then out[k] = v end
    end
    return out, nil
end

return M
