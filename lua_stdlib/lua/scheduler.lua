-- The per-VM scheduler: every task is a coroutine; channel operations switch between tasks inside
-- Lua (no Python round trip); anything that waits on the outside world (timers, I/O, the log)
-- yields a request that `run` hands back to the Python host, which resumes the task later with
-- `wake`. Runaway code is stopped by an instruction-count hook on every coroutine.
--
-- Loaded once per VM with the raw (unsandboxed) globals; it returns the scheduler table `S`.

local raw_create, raw_resume, raw_yield, raw_status, raw_running, raw_close =
    coroutine.create, coroutine.resume, coroutine.yield, coroutine.status, coroutine.running, coroutine.close
local sethook, traceback = debug.sethook, debug.traceback
local pack, unpack, select, error, type, setmetatable = table.pack, table.unpack, select, error, type, setmetatable

local S = {}

--- Yielded by an operation that waits for another task of this VM (a channel); the operation has
--- already registered the task somewhere that will `wake` it.
local BLOCK = setmetatable({}, { __name = "wippy.block", __tostring = function() return "wippy.block" end })
S.BLOCK = BLOCK

--- A request to the host: {kind = "...", ...}. Marked by this metatable so nested coroutines can
--- tell scheduler yields from their own.
local REQUEST = { __name = "wippy.request" }
S.REQUEST = REQUEST

local function is_sched(v)
    return v == BLOCK or (type(v) == "table" and getmetatable(v) == REQUEST) or (type(v) == "userdata" and S.is_pending(v))
end
S.is_sched = is_sched

function S.request(req)
    setmetatable(req, REQUEST)
    return raw_yield(req)
end

-- ready queue: a ring of {co, args-pack}
local ready_head, ready_tail = 1, 0
local ready = {}

local tasks = setmetatable({}, { __mode = "k" }) -- co -> task
S.tasks = tasks

-- budgets -----------------------------------------------------------------------------------
local HOOK_EVERY = 10000
S.slice_limit = 0      -- instructions per resume slice (0 = unlimited)
S.total_limit = 0      -- instructions per task (0 = unlimited)

local current_task = nil

local function hook()
    local t = current_task
    if t == nil then return end
    t.slice = t.slice + HOOK_EVERY
    t.total = t.total + HOOK_EVERY
    if S.slice_limit > 0 and t.slice > S.slice_limit then
        t.slice = 0
        error("runaway code stopped: more than " .. S.slice_limit ..
              " instructions without yielding (lua.max_slice_instructions)", 2)
    end
    if S.total_limit > 0 and t.total > S.total_limit then
        error("runaway code stopped: more than " .. S.total_limit ..
              " instructions in this task (lua.max_task_instructions)", 2)
    end
end

function S.watch(co)
    if S.slice_limit > 0 or S.total_limit > 0 then
        sethook(co, hook, "", HOOK_EVERY)
    end
end

--- Create a task running fn(...). `done(ok, ...)` is called with the results when it ends.
function S.spawn(fn, done, parent, ...)
    local co = raw_create(fn)
    local task = { co = co, done = done, slice = 0, total = 0, parent = parent, children = nil,
                   ctx = parent and parent.ctx or nil }
    tasks[co] = task
    if parent ~= nil then
        parent.children = parent.children or {}
        parent.children[co] = true
    end
    S.watch(co)
    ready_tail = ready_tail + 1
    ready[ready_tail] = { co, pack(...) }
    return co, task
end

--- The task running now and its coroutine (also from inside a user coroutine of that task:
--- whoever blocks registers the task's coroutine, which the scheduler resumes).
function S.current()
    local t = current_task
    if t == nil then return nil, nil end
    return t, t.co
end

function S.current_co()
    local t = current_task
    if t == nil then error("blocking operation outside a task", 3) end
    return t.co
end

--- Make a blocked task runnable with these values (what its pending yield returns).
function S.wake(co, ...)
    ready_tail = ready_tail + 1
    ready[ready_tail] = { co, pack(...) }
end

--- Kill a task and its children (their coroutines are closed; `done` is not called).
function S.kill(co)
    local task = tasks[co]
    if task == nil then return end
    tasks[co] = nil
    task.dead = true
    if task.children then
        for child in pairs(task.children) do S.kill(child) end
    end
    if raw_status(co) == "suspended" then raw_close(co) end
end

--- Run ready tasks until none is ready. Returns the list of {co, request} for the host.
function S.run()
    local requests = nil
    while ready_head <= ready_tail do
        local item = ready[ready_head]
        ready[ready_head] = nil
        ready_head = ready_head + 1
        local co, args = item[1], item[2]
        local task = tasks[co]
        if task ~= nil and not task.dead and raw_status(co) == "suspended" then
            task.slice = 0
            local prev = current_task
            current_task = task
            local r = pack(raw_resume(co, unpack(args, 1, args.n)))
            current_task = prev
            if raw_status(co) == "dead" then
                tasks[co] = nil
                if task.parent and task.parent.children then task.parent.children[co] = nil end
                if task.children then
                    for child in pairs(task.children) do S.kill(child) end
                end
                if task.done then
                    if r[1] then
                        task.done(true, unpack(r, 2, r.n))
                    else
                        task.done(false, r[2], traceback(co, nil, 0))
                    end
                end
            else
                local y = r[2]
                if y ~= BLOCK then
                    requests = requests or {}
                    requests[#requests + 1] = { co, y }
                end
            end
        end
    end
    ready_head, ready_tail = 1, 0
    return requests
end

function S.pending_count()
    return ready_tail - ready_head + 1
end

-- coroutines for user code ------------------------------------------------------------------
-- User coroutines (generators, iterators) must pass scheduler yields through to the task, so a
-- blocking call inside them suspends the task instead of surfacing in the user's resume.

local function pass_through(co, r)
    while r[1] and raw_status(co) == "suspended" and is_sched(r[2]) do
        local back = pack(raw_yield(r[2]))
        r = pack(raw_resume(co, unpack(back, 1, back.n)))
    end
    return r
end

local user = {}
for k, v in pairs(coroutine) do user[k] = v end
user.create = function(fn)
    local co = raw_create(fn)
    S.watch(co)
    return co
end
user.resume = function(co, ...)
    local r = pass_through(co, pack(raw_resume(co, ...)))
    return unpack(r, 1, r.n)
end
user.wrap = function(fn)
    local co = user.create(fn)
    return function(...)
        local r = pass_through(co, pack(raw_resume(co, ...)))
        if not r[1] then error(r[2], 2) end
        return unpack(r, 2, r.n)
    end
end
user.spawn = function(fn, ...)
    local parent = S.current()
    if parent == nil then error("coroutine.spawn: not inside a task", 2) end
    S.spawn(fn, nil, parent, ...)
    return true
end
S.user_coroutine = user

return S
