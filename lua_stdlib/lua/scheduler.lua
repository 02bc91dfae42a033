-- The per-VM scheduler: every task is a coroutine; channel operations switch between tasks inside
-- Lua (no Python round trip); anything that waits on the outside world (timers, I/O, the log)
-- yields a request that `run` hands back to the Python host, which resumes the task later with
-- `wake`. `run` returns after a bounded batch of resumes, so the event loop stays responsive.
--
-- Runaway code costs nothing until it happens: every task thread has a (disarmed) Lua hook; the
-- host's watchdog arms it from another OS thread when one `run` has gone on longer than the slice
-- limit (lua_sethook is safe to call asynchronously), and the hook stops the task that is running.
--
-- Loaded once per VM with the raw (unsandboxed) globals and the host's thread registry
-- (register(ptr), unregister(ptr)) and its completion callback for host calls (done(token, ok,
-- ...): a task whose `done` is a number reports through it, so no Python callable is made per
-- call; released(token) once the call's coroutines have ended too); returns the scheduler table `S`.

local host_register, host_unregister, host_done, host_released = ...
local raw_create, raw_resume, raw_yield, raw_status, raw_close =
    coroutine.create, coroutine.resume, coroutine.yield, coroutine.status, coroutine.close
local sethook, traceback, clock = debug.sethook, debug.traceback, os.clock
local pack, unpack, error, type, setmetatable, getmetatable, tostring, pairs =
    table.pack, table.unpack, error, type, setmetatable, getmetatable, tostring, pairs

local S = {}

--- Yielded by an operation that waits for another task of this VM (a channel); the operation has
--- already registered the task somewhere that will `wake` it.
local BLOCK = setmetatable({}, { __name = "wippy.block", __tostring = function() return "wippy.block" end })
S.BLOCK = BLOCK

--- A request to the host: {kind = "...", ...}.
local REQUEST = { __name = "wippy.request" }
S.REQUEST = REQUEST

local function is_sched(v)
    return v == BLOCK or (type(v) == "table" and getmetatable(v) == REQUEST)
        or (type(v) == "userdata" and S.is_pending(v))
end
S.is_sched = is_sched

function S.request(req)
    setmetatable(req, REQUEST)
    return raw_yield(req)
end

-- ready queue: parallel rings of coroutines and their resume values (nil = none)
local rq_co, rq_args = {}, {}
local rq_head, rq_tail = 1, 0

local tasks = {} -- co -> task (strong: a task lives until it ends or is killed)
S.tasks = tasks
local current_task = nil
S.batch = 2000        -- resumes per `run` before returning to the host
S.slice_limit = 0     -- seconds a `run` may take before the watchdog stops the running task
S.total_limit = 0     -- CPU seconds a task may use in all (0 = unlimited)
local run_started = 0

-- threads and the runaway hook ------------------------------------------------------------
local function runaway_hook()
    -- armed by the watchdog; a stale arming (from an earlier, long `run`) is disarmed here
    if S.slice_limit > 0 and clock() - run_started >= S.slice_limit * 0.9 then
        error("runaway code stopped: ran more than " .. S.slice_limit ..
              " s without yielding (lua.max_slice_seconds)", 2)
    end
    sethook(coroutine.running(), runaway_hook, "", 0)
end

local function register_thread(co, task)
    sethook(co, runaway_hook, "", 0) -- registered, not armed: no cost
    local ptr = tostring(co):match("0x%x+")
    task.threads[co] = ptr
    host_register(ptr)
end

local function release_thread(co, task)
    local ptr = task.threads[co]
    if ptr ~= nil then
        host_unregister(ptr)
        task.threads[co] = nil
    end
end

local function release_threads(task)
    for co, ptr in pairs(task.threads) do
        host_unregister(ptr) -- first: the watchdog must never arm a freed thread
        task.threads[co] = nil
    end
end

--- Report a task's end to its `done`: a function, or a host call's token.
local function report(done, ...)
    if type(done) == "number" then return host_done(done, ...) end
    return done(...)
end

--- Create a task running fn(...). `done(ok, ...)` is called with the results when it ends.
function S.spawn(fn, done, parent, ...)
    local co = raw_create(fn)
    local task = { co = co, done = done, parent = parent, children = nil, threads = {}, cpu = 0,
                   ctx = parent and parent.ctx or nil, proc = parent and parent.proc or nil }
    tasks[co] = task
    if parent ~= nil then
        parent.children = parent.children or {}
        parent.children[co] = true
    end
    register_thread(co, task)
    rq_tail = rq_tail + 1
    rq_co[rq_tail] = co
    local n = select("#", ...)
    if n > 0 then rq_args[rq_tail] = pack(...) end
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
    rq_tail = rq_tail + 1
    rq_co[rq_tail] = co
    local n = select("#", ...)
    if n == 1 then
        rq_args[rq_tail] = { (...), n = 1 }
    elseif n > 0 then
        rq_args[rq_tail] = pack(...)
    end
end

local function finish(co, task)
    tasks[co] = nil
    release_threads(task)
    local parent = task.parent
    if parent ~= nil then
        if parent.children then
            parent.children[co] = nil
        elseif parent.orphans then -- the last coroutine of a host call that has returned
            parent.orphans = parent.orphans - 1
            if parent.orphans == 0 then
                parent.orphans = nil
                host_released(parent.done)
            end
        end
    end
    if task.children then
        for child in pairs(task.children) do S.kill(child) end
    end
end

-- pooled tasks ------------------------------------------------------------------------------
-- Host function calls (an HTTP request's handler) are many and short: their tasks run on worker
-- coroutines that are kept when a call ends and reused for the next, which saves creating,
-- hooking and registering a coroutine (and collecting it) per call. A worker runs its function
-- under xpcall and yields POOL_DONE with the results instead of dying; `run` treats that as the
-- end of the task. A killed worker is closed, never reused. Unlike a process's, a call's
-- coroutines (coroutine.spawn) are not stopped when its function returns.
local POOL_DONE = setmetatable({}, { __name = "wippy.pool_done" })
local pool, pool_n = {}, 0
local pooled_ptr = {} -- worker -> its registered thread pointer, while it lives
S.pool_max = 256

local function failure(e) return { e, traceback(nil, 2) } end

local function worker(fn, ...)
    local r = pack(xpcall(fn, failure, ...))
    while true do
        local nfn, nargs = raw_yield(POOL_DONE, r)
        r = pack(xpcall(nfn, failure, unpack(nargs, 1, nargs.n)))
    end
end

--- Create a task running fn(...) on a pooled worker coroutine; `done` as for S.spawn.
function S.spawn_pooled(fn, done, parent, ...)
    local co, args
    if pool_n > 0 then
        co = pool[pool_n]
        pool[pool_n] = nil
        pool_n = pool_n - 1
        args = { fn, pack(...), n = 2 }
    else
        co = raw_create(worker)
        args = pack(fn, ...)
    end
    local task = { co = co, done = done, parent = parent, children = nil, threads = {}, cpu = 0,
                   ctx = parent and parent.ctx or nil, proc = parent and parent.proc or nil, pooled = true }
    tasks[co] = task
    if parent ~= nil then
        parent.children = parent.children or {}
        parent.children[co] = true
    end
    local ptr = pooled_ptr[co]
    if ptr == nil then
        register_thread(co, task)
        pooled_ptr[co] = task.threads[co]
    else
        task.threads[co] = ptr
    end
    rq_tail = rq_tail + 1
    rq_co[rq_tail] = co
    rq_args[rq_tail] = args
    return co, task
end

--- A host call (vm.call): a pooled task that reports by `token`, gets its pid through the token
--- when its code first asks (lazy_pid), and carries what the host attached to it (`data`: the HTTP
--- request of a handler).
function S.spawn_call(fn, token, data, ...)
    local _co, task = S.spawn_pooled(fn, token, nil, ...)
    task.lazy_pid = token
    task.call_data = data
    return task
end

local function pooled_done(co, task, r)
    task.threads[co] = nil -- the worker stays registered for its next task
    -- a host call ends when its function returns; coroutines it started run on (an HTTP handler's
    -- background work outlives the response), still able to see the call's task as their parent,
    -- and the call is released when the last of them ends
    local kids, live = task.children, 0
    task.children = nil
    if kids then
        for child in pairs(kids) do
            if tasks[child] ~= nil then live = live + 1 end
        end
    end
    if live > 0 then task.orphans = live end
    finish(co, task)
    if task.done then
        local ok, err
        if r[1] then
            ok, err = pcall(report, task.done, true, unpack(r, 2, r.n))
        else
            local f = r[2]
            ok, err = pcall(report, task.done, false, f[1], f[2])
        end
        if not ok then S.callback_errors = (S.callback_errors or 0) + 1; S.last_callback_error = err end
    end
    if task.orphans == nil and type(task.done) == "number" then host_released(task.done) end
    if pool_n < S.pool_max then
        pool_n = pool_n + 1
        pool[pool_n] = co
    else
        local ptr = pooled_ptr[co]
        pooled_ptr[co] = nil
        if ptr then host_unregister(ptr) end
        raw_close(co)
    end
end

--- Kill a task and its children (their coroutines are closed; `done` is not called).
function S.kill(co)
    local task = tasks[co]
    if task == nil then return end
    task.dead = true
    pooled_ptr[co] = nil -- a killed worker is closed (finish unregisters its thread)
    finish(co, task)
    if raw_status(co) == "suspended" then raw_close(co) end
end

--- After the VM ran out of memory inside S.run (outside any coroutine, so no task saw it): the
--- task that was running fails with that error, and the rest go on.
function S.out_of_memory(message)
    local task = current_task
    current_task = nil
    S.running = nil
    if task == nil then return end
    S.kill(task.co)
    if task.done then pcall(report, task.done, false, message, "") end
end

local function resume(co, args)
    if args == nil then return pack(raw_resume(co)) end
    return pack(raw_resume(co, unpack(args, 1, args.n)))
end

--- Run ready tasks (a bounded batch). Returns the list of {co, request} for the host, and
--- whether tasks are still ready (the host runs again soon).
function S.run()
    local requests = nil
    local budget = S.batch
    run_started = clock()
    while rq_head <= rq_tail and budget > 0 do
        budget = budget - 1
        local co, args = rq_co[rq_head], rq_args[rq_head]
        rq_co[rq_head], rq_args[rq_head] = nil, nil
        rq_head = rq_head + 1
        local task = tasks[co]
        if task ~= nil and raw_status(co) == "suspended" then
            current_task = task
            S.running = task -- read directly by the permission check (no call on the hot path)
            local t0 = S.total_limit > 0 and clock() or 0
            local r = resume(co, args)
            current_task = nil
            S.running = nil
            if t0 > 0 then
                task.cpu = task.cpu + (clock() - t0)
            end
            if raw_status(co) == "dead" then
                pooled_ptr[co] = nil
                finish(co, task)
                if task.done then
                    -- protected: a failing host callback must not strand the tasks still to run
                    local ok, err
                    if r[1] then
                        ok, err = pcall(report, task.done, true, unpack(r, 2, r.n))
                    else
                        ok, err = pcall(report, task.done, false, r[2], traceback(co, nil, 0))
                    end
                    if not ok then S.callback_errors = (S.callback_errors or 0) + 1; S.last_callback_error = err end
                end
            elseif r[2] == POOL_DONE and r[1] then
                pooled_done(co, task, r[3])
            elseif S.total_limit > 0 and task.cpu > S.total_limit then
                S.kill(co)
                if task.done then
                    report(task.done, false, "runaway code stopped: used more than " .. S.total_limit ..
                        " s of CPU (lua.max_task_seconds)", "")
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
    local more = rq_head <= rq_tail
    if not more then rq_head, rq_tail = 1, 0 end
    return requests, more
end

-- coroutines for user code ------------------------------------------------------------------
-- User coroutines (generators, iterators) must pass scheduler yields through to the task, so a
-- blocking call inside them suspends the task instead of surfacing in the user's resume.

local function pass_through(co, r)
    while r[1] and raw_status(co) == "suspended" and is_sched(r[2]) do
        local back = pack(raw_yield(r[2]))
        r = pack(raw_resume(co, unpack(back, 1, back.n)))
    end
    if raw_status(co) == "dead" and current_task ~= nil then release_thread(co, current_task) end
    return r
end

local user = {}
for k, v in pairs(coroutine) do user[k] = v end
user.create = function(fn)
    local co = raw_create(fn)
    local task = current_task
    if task ~= nil then register_thread(co, task) end
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
    local parent = current_task
    if parent == nil then error("coroutine.spawn: not inside a task", 2) end
    S.spawn(fn, nil, parent, ...)
    return true
end
S.user_coroutine = user

return S
