-- The `exec` module: commands of exec.native executors (the host side is _mod_exec.py).
--   exec.get(id) -> executor, err                       (permission exec.get on the executor id)
--   executor:exec(cmd, {work_dir, env = {NAME = "v"}}) -> proc, err   (permission exec.run on cmd)
--   executor:release() -> true
--   proc:start() -> true; proc:stdout_stream() / proc:stderr_stream() -> stream (the same one each call;
--       read(n) -> chunk | nil, nil at the end, waiting for output; scanner(split); stat; close)
--   proc:write_stdin(s) -> true ("" closes stdin); proc:wait() -> exit_code (-1: ended by a signal)
--   proc:signal(n) -> true; proc:close(force?) -> true (SIGTERM, or SIGKILL with force)
-- Loaded with (host bridge, errors, security lib, stream lib).

local B, errors, sec, streams = ...
local make = errors._make
local type, tostring, setmetatable, mathtype = type, tostring, setmetatable, math.type
local utf8len = utf8.len

local function invalid(message) return make("INVALID", message, false) end

local executors = setmetatable({}, { __mode = "k" })
local procs = setmetatable({}, { __mode = "k" })

local function misuse(what, name)
    return invalid(what .. ":" .. name .. ": call it as a method, " .. what .. ":" .. name .. "(...)")
end

local PIPE = { read = B.pipe_read, close = B.pipe_close, stat = B.pipe_stat }

-- processes ------------------------------------------------------------------------------------
local Process = { __name = "exec.Process", __metatable = false }
Process.__index = Process
Process.__tostring = function() return "exec.Process" end

function Process:start()
    if not procs[self] then return nil, misuse("proc", "start") end
    return B.start(self._h)
end

function Process:wait()
    if not procs[self] then return nil, misuse("proc", "wait") end
    return B.wait(self._h)
end

function Process:signal(sig)
    if not procs[self] then return nil, misuse("proc", "signal") end
    if mathtype(sig) ~= "integer" or sig < 1 or sig > 64 then
        return nil, invalid("proc:signal: expected a signal number (15 for SIGTERM, 9 for SIGKILL), got " ..
            tostring(sig))
    end
    return B.signal(self._h, sig)
end

function Process:write_stdin(data)
    if not procs[self] then return nil, misuse("proc", "write_stdin") end
    if type(data) == "number" then data = tostring(data) end
    if type(data) ~= "string" then return nil, invalid("proc:write_stdin: expected a string, got " .. type(data)) end
    return B.write_stdin(self._h, data)
end

local function output(self, which)
    local key = "_" .. which
    local s = self[key]
    if s ~= nil then return s, nil end
    local p, err = B.pipe(self._h, which)
    if p == nil then return nil, err end
    s = streams.new("exec." .. which, PIPE, p)
    self[key] = s
    return s, nil
end

function Process:stdout_stream()
    if not procs[self] then return nil, misuse("proc", "stdout_stream") end
    return output(self, "stdout")
end

function Process:stderr_stream()
    if not procs[self] then return nil, misuse("proc", "stderr_stream") end
    return output(self, "stderr")
end

function Process:close(force)
    if not procs[self] then return nil, misuse("proc", "close") end
    return B.close(self._h, force == true)
end

-- executors ------------------------------------------------------------------------------------
local Executor = { __name = "exec.Executor", __metatable = false }
Executor.__index = Executor
Executor.__tostring = function(e) return "exec.Executor{" .. e._id .. "}" end

function Executor:exec(cmd, opts)
    if not executors[self] then return nil, misuse("executor", "exec") end
    if type(cmd) ~= "string" then return nil, invalid("executor:exec: command must be a string, got " .. type(cmd)) end
    if cmd == "" then return nil, invalid("executor:exec: command is required") end
    if not utf8len(cmd) then return nil, invalid("executor:exec: command must be text (UTF-8)") end
    if opts ~= nil and type(opts) ~= "table" then
        return nil, invalid("executor:exec: options must be a table {work_dir, env}, got " .. type(opts))
    end
    local denied = sec.check("exec.run", cmd)
    if denied then return nil, denied end
    local h, err = B.exec(self._e, cmd, opts)
    if h == nil then return nil, err end
    local p = setmetatable({ _h = h }, Process)
    procs[p] = true
    return p, nil
end

function Executor:release()
    if not executors[self] then return nil, misuse("executor", "release") end
    return B.release(self._e)
end

-- the module -------------------------------------------------------------------------------------
local M = {}

function M.get(id)
    if type(id) ~= "string" then return nil, invalid("exec.get: expected an executor id, got " .. type(id)) end
    if id == "" then return nil, invalid("exec.get: resource id is required") end
    if not utf8len(id) then return nil, invalid("exec.get: the id must be text (UTF-8)") end
    local denied = sec.check("exec.get", id)
    if denied then return nil, denied end
    local e, err = B.get(id)
    if e == nil then return nil, err end
    local ex = setmetatable({ _e = e, _id = id }, Executor)
    executors[ex] = true
    return ex, nil
end

return M
