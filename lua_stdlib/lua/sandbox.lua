-- Sandboxes: the environment every entry's code runs in.
-- An entry sees Wippy's globals (process, channel, errors, payload, print), the safe parts of the
-- standard library (no io, debug, package, load/dofile/loadstring, os beyond time/date/clock/
-- difftime, utf8) and `require` for what its `modules:` and `imports:` allow. Library tables are
-- read-only. Loaded with (scheduler, channel module, errors module, types library or nil, host)
-- and returns {make_env, compile, readonly}.

local S, channel, errors, types, host = ...
local setmetatable, getmetatable, rawget, type, error, tostring, pairs, select, next =
    setmetatable, getmetatable, rawget, type, error, tostring, pairs, select, next
local raw_load = load
local concat, pack, unpack = table.concat, table.pack, table.unpack

local function readonly(t, name)
    return setmetatable({}, {
        __index = t,
        __newindex = function(_, k) error("attempt to modify read-only module " .. name .. " (field " .. tostring(k) .. ")", 2) end,
        __pairs = function() return next, t, nil end,
        __len = function() return #t end,
        __metatable = false,
        __name = name,
    })
end

local function copy(t)
    local out = {}
    for k, v in pairs(t) do out[k] = v end
    return out
end

-- Strings keep their methods (`s:upper()`) but nobody reaches the real metatable.
getmetatable("").__metatable = false

local safe_os = { time = os.time, date = os.date, clock = os.clock, difftime = os.difftime }

local base_names = {
    "assert", "error", "ipairs", "next", "pairs", "pcall", "rawequal", "rawget", "rawlen", "rawset",
    "select", "setmetatable", "getmetatable", "tonumber", "tostring", "type", "xpcall", "collectgarbage",
}
local raw_collectgarbage = collectgarbage
local function safe_collectgarbage(opt, ...)
    if opt == nil or opt == "collect" or opt == "count" or opt == "step" then
        return raw_collectgarbage(opt, ...)
    end
    error("collectgarbage: option '" .. tostring(opt) .. "' is not allowed", 2)
end

local function print_fn(label)
    return function(...)
        local n = select("#", ...)
        local parts = {}
        for i = 1, n do parts[i] = tostring((select(i, ...))) end
        host.print(label, concat(parts, "\t"))
    end
end

--- A fresh environment for one entry. `resolve(name)` returns the module or nil, message.
local function make_env(label, resolve, process)
    local env = {}
    for _, name in ipairs(base_names) do env[name] = _ENV[name] end
    env.collectgarbage = safe_collectgarbage
    env.unpack = unpack
    env.string = copy(string)
    env.table = copy(table)
    env.math = copy(math)
    env.os = copy(safe_os)
    env.coroutine = copy(S.user_coroutine)
    env.channel = channel.public
    env.errors = errors.public
    env.payload = host.payload
    env.process = process
    env.print = print_fn(label)
    env.require = function(name)
        local value, err = resolve(name)
        if err ~= nil then error(err, 2) end
        return value
    end
    env._G = env
    env._VERSION = _VERSION
    if types ~= nil then
        env.__wippy_types = types -- what translated type declarations call (see _dialect)
        types.install(env)
    end
    return env
end

--- Compile translated source in an environment; returns the chunk function or nil, message.
local function compile(code, chunkname, env)
    return raw_load(code, "=" .. chunkname, "t", env)
end

return { make_env = make_env, compile = compile, readonly = readonly }
