-- `funcs` and `ctx`: calling function.lua entries with Wippy's conventions.
--   funcs.call(id, ...) -> result, err      (runs in the caller's task: inherits its context)
--   funcs.async(id, ...) -> Future, err     (a task of its own; Future:response()/:channel()/:result()/...)
--   funcs.new() -> Executor  :with_context(t) :with_actor(a) :with_scope(s) :with_options(t) :call :async
--   ctx.get(key) -> value, err(NOT_FOUND); ctx.all() -> table
-- A callee that raises gives the caller (nil, error object with the Lua traceback); a callee's
-- own `return nil, err` passes through. Arguments and results are copied, as between processes.
-- Executor options `retry = {max_attempts, initial_delay, max_delay, backoff_factor, jitter,
-- retry_kinds, skip_kinds}` call again after a retryable failure, waiting between attempts.

local S, errors, channel, payload, resolve, readonly, sec, duration_ms = ...
local check = sec.check
local strict = sec.strict
local pack, unpack, type, pairs, setmetatable, getmetatable, tostring, xpcall, select =
    table.pack, table.unpack, type, pairs, setmetatable, getmetatable, tostring, xpcall, select
local traceback = debug.traceback
local current = S.current
local random, min, floor = math.random, math.min, math.floor

local function copy(v, depth)
    if type(v) ~= "table" or getmetatable(v) ~= nil then return v end
    depth = depth or 0
    if depth > 100 then error("value nested more than 100 levels deep", 0) end
    local out = {}
    for k, x in pairs(v) do out[k] = copy(x, depth + 1) end
    return out
end

local function copy_all(...)
    local n = select("#", ...)
    if n == 0 then return 0 end
    local args = pack(...)
    for i = 1, n do args[i] = copy(args[i]) end
    return n, args
end

local function as_error(e, tb)
    if errors._is(e) then return e end
    return errors._make("UNKNOWN", tostring(e), nil, nil, tb)
end

local function on_error(e)
    return as_error(e, traceback(tostring(e), 2))
end

local function check_id(id)
    if type(id) ~= "string" or id == "" or not id:find(":", 1, true) then
        return errors._make("INVALID", "function id must be 'namespace:name', got " .. tostring(id))
    end
    return nil
end

local function merged(base, extra)
    if extra == nil then return base end
    local out = {}
    if base then for k, v in pairs(base) do out[k] = v end end
    for k, v in pairs(extra) do out[k] = v end
    return out
end

-- Permissions (checked against the caller's context): funcs.call on the function; changing the
-- callee's actor or scope also needs funcs.security, and passing context values funcs.context.
local function permitted(opts, id)
    local denied = check("funcs.call", id)
    if denied then return denied end
    if opts ~= nil then
        if opts.actor ~= nil or opts.scope ~= nil then
            denied = check("funcs.security", id)
            if denied then return denied end
        end
        if opts.context ~= nil then return check("funcs.context", id) end
    end
    return nil
end

-- Failures a retry policy may repeat: never one marked not retryable, nor (unless the policy lists
-- kinds) INVALID, PERMISSION_DENIED or INTERNAL; a plain value raised or returned counts as UNKNOWN.
local NEVER_RETRIED = { INVALID = true, PERMISSION_DENIED = true, INTERNAL = true }

local function listed(list, kind)
    for _, k in pairs(list) do if k == kind then return true end end
    return false
end

local function retryable(policy, err)
    local kind = "UNKNOWN"
    if errors._is(err) then
        if err._retryable == false then return false end
        kind = err._kind
    end
    if type(policy.skip_kinds) == "table" and listed(policy.skip_kinds, kind) then return false end
    if type(policy.retry_kinds) == "table" and next(policy.retry_kinds) ~= nil then
        return listed(policy.retry_kinds, kind)
    end
    return not NEVER_RETRIED[kind]
end

local function number_of(v, default)
    if type(v) == "number" and v >= 0 then return v end
    return default
end

-- Milliseconds to wait before attempt `attempt` + 1 (the first retry waits initial_delay).
local function delay_ms(policy, attempt)
    local initial = duration_ms(policy.initial_delay) or 100
    local cap = duration_ms(policy.max_delay) or 10000
    local factor = number_of(policy.backoff_factor, 2)
    if factor <= 0 then factor = 1 end
    local jitter = number_of(policy.jitter, 0.1)
    local d = min(initial * factor ^ (attempt - 1), cap)
    if jitter > 0 then d = d + (random() * 2 - 1) * d * jitter end
    if d < 0 then d = 0 end
    return d
end

local function once(fn, n, args)
    local r
    if n == 0 then r = pack(xpcall(fn, on_error)) else r = pack(xpcall(fn, on_error, unpack(args, 1, n))) end
    if not r[1] then return nil, r[2] end
    return copy(r[2]), r[3]
end

local function attempts(fn, n, args, policy)
    local max = floor(number_of(policy.max_attempts, 1))
    local value, err = once(fn, n, copy(args))
    local attempt = 1
    while err ~= nil and attempt < max and retryable(policy, err) do
        local wait = delay_ms(policy, attempt)
        if wait > 0 then S.request({ kind = "sleep", seconds = wait / 1000 }) end
        attempt = attempt + 1
        value, err = once(fn, n, copy(args))
    end
    return value, err
end

-- Run fn in the current task with the executor's context, restoring the caller's afterwards.
-- (`unchecked` skips the permission check: for measuring what the check costs, and for callers
-- that made their own check, like contract method calls.)
local function call_with(opts, id, unchecked, ...)
    local bad = check_id(id)
    if bad then return nil, bad end
    if not unchecked then
        local t = S.running
        -- the common case costs a field read: no actor and scope, no executor options, not strict
        if opts ~= nil or strict or (t ~= nil and t.actor ~= nil and t.scope ~= nil) then
            local denied = permitted(opts, id)
            if denied then return nil, denied end
        end
    end
    local fn, err = resolve(id)
    if fn == nil then return nil, err end
    local task = current()
    local saved_ctx, saved_actor, saved_scope
    if task and opts then
        saved_ctx, saved_actor, saved_scope = task.ctx, task.actor, task.scope
        task.ctx = merged(task.ctx, opts.context)
        if opts.actor ~= nil then task.actor = opts.actor end
        if opts.scope ~= nil then task.scope = opts.scope end
    end
    local n, args = copy_all(...)
    local value, failure
    local policy = opts and opts.options and opts.options.retry
    if type(policy) == "table" and task then
        value, failure = attempts(fn, n, args, policy)
    else
        value, failure = once(fn, n, args)
    end
    if task and opts then task.ctx, task.actor, task.scope = saved_ctx, saved_actor, saved_scope end
    return value, failure
end

local Future = {}
Future.__index = Future
Future.__name = "future"

function Future:response() return self._ch end
function Future:channel() return self._ch end
function Future:is_complete() return self._done end
function Future:is_canceled() return self._canceled end
function Future:result()
    if not self._done then return nil, nil end
    if self._err ~= nil then return nil, self._err end
    return self._payload, nil
end
function Future:error()
    if self._err ~= nil then return self._err, true end
    return nil, false
end
function Future:cancel()
    if self._done then return false end
    self._done, self._canceled = true, true
    self._err = errors._make("CANCELED", "call canceled")
    if self._co then S.kill(self._co) end
    self._ch:close()
    return true
end

local function async_with(opts, id, unchecked, ...)
    local bad = check_id(id)
    if bad then return nil, bad end
    if not unchecked then
        local denied = permitted(opts, id)
        if denied then return nil, denied end
    end
    local fn, err = resolve(id)
    if fn == nil then return nil, err end
    local fut = setmetatable({ _ch = channel.new(1), _done = false, _canceled = false }, Future)
    local parent = current()
    local n, args = copy_all(...)
    local function done(ok, value, e)
        if fut._done then return end
        fut._done = true
        if not ok then
            fut._err = as_error(value, e)
        elseif e ~= nil then
            fut._err = e
        else
            fut._payload = payload.new(copy(value))
            fut._ch:post(fut._payload)
        end
        fut._ch:close()
    end
    local body = fn
    local policy = opts and opts.options and opts.options.retry
    if type(policy) == "table" then
        body = function(...) return attempts(fn, select("#", ...), pack(...), policy) end
    end
    local co, task = S.spawn(body, done, nil, unpack(args or {}, 1, n))
    task.ctx = merged(parent and parent.ctx, opts and opts.context)
    task.actor = (opts and opts.actor) or (parent and parent.actor)
    task.scope = (opts and opts.scope) or (parent and parent.scope)
    fut._co = co
    return fut, nil
end

local Executor = {}
Executor.__index = Executor
Executor.__name = "executor"

local function executor(opts) return setmetatable({ _opts = opts }, Executor) end
local function with(self, key, value)
    local o = {}
    for k, v in pairs(self._opts) do o[k] = v end
    o[key] = value
    return executor(o)
end
function Executor:with_context(t)
    if type(t) ~= "table" then error("with_context: expected a table", 2) end
    return with(self, "context", merged(self._opts.context, t))
end
function Executor:with_actor(a)
    if not sec.is_actor(a) then error("with_actor: expected an actor from security.new_actor", 2) end
    return with(self, "actor", a)
end
function Executor:with_scope(s)
    if not sec.is_scope(s) then error("with_scope: expected a scope from security.new_scope/named_scope", 2) end
    return with(self, "scope", s)
end
function Executor:with_options(o) return with(self, "options", merged(self._opts.options, o)) end
function Executor:call(id, ...) return call_with(self._opts, id, false, ...) end
function Executor:async(id, ...) return async_with(self._opts, id, false, ...) end

local funcs = {
    call = function(id, ...) return call_with(nil, id, false, ...) end,
    async = function(id, ...) return async_with(nil, id, false, ...) end,
    new = function() return executor({}) end,
}

local ctx = {
    get = function(key)
        local task = current()
        local c = task and task.ctx
        if c == nil or c[key] == nil then
            return nil, errors._make("NOT_FOUND", "context value " .. tostring(key) .. " is not set")
        end
        return c[key], nil
    end,
    all = function()
        local task = current()
        return copy((task and task.ctx) or {})
    end,
}

return { funcs = funcs, ctx = ctx, copy = copy,
         call_unchecked = function(id, ...) return call_with(nil, id, true, ...) end,
         -- for modules that made their own permission check (contract): opts = {context, actor, scope, options}
         invoke = function(opts, id, ...) return call_with(opts, id, true, ...) end,
         invoke_async = function(opts, id, ...) return async_with(opts, id, true, ...) end }
