-- The `process` global: pids, mailboxes, events, spawning, links, monitors and names.
--
-- Processes are root tasks of this VM's scheduler (many share one VM); a task's `proc` field is its
-- process state and children (coroutine.spawn, funcs calls) inherit it, so `process.pid()` and the
-- mailbox always mean the process the code runs in. Code that runs in no process (a function call
-- from the host) sees the host's default pid and has an inbox of its own all the same.
--
-- Mailbox routing, as Wippy does it: a message with topic T goes to the channel of `listen(T)` if
-- there is one, else (topics not starting with "@") to the inbox channel once `inbox()` was called,
-- else it stays queued, in order, until one of those exists. Events go to `events()` or wait the
-- same way. Channels are fed with `post` (never blocking the host); each queue holds at most
-- `limit` values, beyond which the host turns the message into a dead letter.
--
-- Loaded with (S, channel, errors, readonly, payload, sec, B, default_pid, limit); B is the host
-- bridge (services/_processes.py via lua_stdlib/_process.py). Returns the VM side table `V`.

local S, channel, errors, readonly, payload, sec, B, default_pid, limit = ...
local type, select, tostring, setmetatable, error, pairs, ipairs = type, select, tostring, setmetatable, error,
    pairs, ipairs
local sub, fmt = string.sub, string.format
local pack, unpack = table.pack, table.unpack
local utf8len = utf8.len

local EVENT = { CANCEL = "pid.cancel", EXIT = "pid.exit", LINK_DOWN = "pid.link.down", OUTDATED = "pid.outdated" }

local function invalid(message) return errors._make("INVALID", message, false) end

-- pids, names, topics and entry ids cross to the host as text: non-empty UTF-8 strings
local function is_text(v) return type(v) == "string" and v ~= "" and utf8len(v) ~= nil end
local function what(v)
    if type(v) == "string" then return v == "" and "an empty string" or "a binary (non-UTF-8) string" end
    return type(v)
end
local check = sec.check

-- queues ---------------------------------------------------------------------------------------
local function queue() return { head = 1, tail = 0 } end
local function qpush(q, v) q.tail = q.tail + 1; q[q.tail] = v end
local function qlen(q) return q.tail - q.head + 1 end

-- process state ----------------------------------------------------------------------------------
local procs = {} -- pid -> state

local function new_state(pid)
    return { pid = pid, pending = queue(), pending_events = queue(), topics = {}, inbox = nil, events = nil,
             options = { trap_links = false, upgradable = false } }
end

local fallback = nil -- the state of code running outside any process (created on first use)

local function current()
    local t = S.running
    local st = t and t.proc
    if st then return st end
    -- a function call outside processes gets its pid when it first needs one (the task that
    -- holds lazy_pid is the call's; coroutines it started ask it)
    local owner = t
    while owner ~= nil and owner.proc == nil and owner.lazy_pid == nil do owner = owner.parent end
    if owner ~= nil then
        st = owner.proc
        if st == nil then
            st = new_state(B.call_pid(owner.lazy_pid))
            st.task = owner
            procs[st.pid] = st
            owner.proc = st
            owner.lazy_pid = nil
        end
        t.proc = st
        return st
    end
    if fallback == nil then
        fallback = new_state(default_pid)
        procs[default_pid] = fallback
    end
    return fallback
end

-- Messages ---------------------------------------------------------------------------------------
local Message = {}
Message.__index = Message
Message.__name = "process.Message"
function Message:topic() return self._topic end
function Message:from() return self._from end
function Message:payload()
    local args = self._args
    if args.n == 0 then return nil end
    if args.n == 1 then return payload.new(args[1]) end
    local out = {}
    for i = 1, args.n do out[i] = payload.new(args[i]) end
    return out
end
function Message:__tostring() return "message(" .. self._topic .. ")" end

local function room(ch) return limit <= 0 or #ch < limit end

-- where a message with this topic goes now: a channel, and whether it carries the Message (else
-- its first payload value); nil while nobody subscribes to it
local function target(st, topic)
    local listener = st.topics[topic]
    if listener then return listener.ch, listener.message end
    if st.inbox and sub(topic, 1, 1) ~= "@" then return st.inbox, true end
    return nil
end

--- Route one message into a process's mailbox: nil, or why it could not ("full", "closed").
local function route(st, msg)
    local ch, whole = target(st, msg._topic)
    if ch == nil then
        if limit > 0 and qlen(st.pending) >= limit then return "full" end
        qpush(st.pending, msg)
        return nil
    end
    if not room(ch) then return "full" end
    if not ch:post(whole and msg or msg._args[1]) then return "closed" end
    return nil
end

-- hand queued messages to a new subscription (in order; the others stay queued). They were
-- accepted already, so the limit does not apply to them again.
local function drain(st)
    local q = st.pending
    if q.head > q.tail then return end
    local keep = queue()
    for i = q.head, q.tail do
        local msg = q[i]
        local ch, whole = target(st, msg._topic)
        if ch == nil or not ch:post(whole and msg or msg._args[1]) then qpush(keep, msg) end
    end
    st.pending = keep
end

-- events -------------------------------------------------------------------------------------------
local function post_event(st, ev)
    if st.events then
        st.events:post(ev)
    else
        qpush(st.pending_events, ev)
    end
end

-- the VM side: called by the host ------------------------------------------------------------------
local V = {}

local traceback, find = debug.traceback, string.find
-- raised by process.upgrade to end the old `main`; never seen by user code that does not catch
-- everything (a pcall around upgrade sees it and should re-raise it)
local UPGRADE = setmetatable({}, { __name = "process.upgrade", __tostring = function() return "process upgrade" end })

local function failure(e)
    if e == UPGRADE then return { upgrade = true } end
    local trace = traceback(nil, 2)
    local cut = find(trace, "\n\t[C]: in function 'xpcall'", 1, true) -- the frames below are the runtime's
    return { error = e, trace = cut and sub(trace, 1, cut - 1) or trace }
end

--- The function a process's task runs: `fn` with its outcome packed in one table, which the host
--- reads safely whatever it holds (binary strings too): {true, value, err, n=...} when `fn`
--- returned, {false, {error = e, trace = traceback}} when it raised.
function V.main(fn)
    return function(...) return pack(xpcall(fn, failure, ...)) end
end

--- Attach a new process to the task that will run its `main`.
function V.attach(task, pid)
    local st = new_state(pid)
    st.task = task
    procs[pid] = st
    task.proc = st
end

--- Run upgraded code as the process's main task, keeping its mailbox and contexts.
function V.reattach(task, pid)
    local st = procs[pid]
    if st == nil then return false end
    local old = st.task
    if old ~= nil then task.ctx, task.actor, task.scope = old.ctx, old.actor, old.scope end
    st.task = task
    task.proc = st
    return true
end

--- Give a new process its context values and security context (plain data from the spawner).
function V.setup(task, ctx, security)
    if ctx ~= nil then task.ctx = ctx end
    if security ~= nil then
        if security.actor ~= nil then task.actor = sec.new_actor(security.actor.id, security.actor.meta) end
        if security.policies ~= nil then
            local scope, err = sec.scope_of(security.policies)
            if scope == nil then return err end
            task.scope = scope
        end
    end
    return nil
end

--- Stop a process's task now (its children too); the host reports the exit.
function V.kill(pid)
    local st = procs[pid]
    if st and st.task then S.kill(st.task.co) end
end

--- The process ended: forget its state (its channels stay usable by whoever holds them).
function V.detach(pid)
    procs[pid] = nil
end

--- Deliver a message; returns "ok", "gone" (no such process here), "full" (the mailbox is at its
--- limit) or "closed" (the process closed the channel that takes this topic).
function V.deliver(to, topic, from, args)
    local st = procs[to]
    if st == nil then return "gone" end
    return route(st, setmetatable({ _topic = topic, _from = from, _args = args }, Message)) or "ok"
end

--- Deliver an event table ({kind, from, at, result?, reason?}); false when no such process.
function V.event(to, ev)
    local st = procs[to]
    if st == nil then return false end
    post_event(st, ev)
    return true
end

function V.options(pid)
    local st = procs[pid]
    return st and st.options
end

function V.task(pid)
    local st = procs[pid]
    return st and st.task
end

-- the public module ------------------------------------------------------------------------------
local P = {}
P.event = readonly(EVENT, "process.event")

function P.pid() return current().pid end
function P.id() return current().pid end

local function check_topic(fname, topic)
    if not is_text(topic) then
        return invalid(fmt("process.%s: the topic must be a non-empty text string, got %s", fname, what(topic)))
    end
    return nil
end

-- the payloads of a send: trailing nils dropped, as Wippy does, so the common
-- `process.send(pid, topic, msg:payload():data())` (data() also returns its nil error) sends one
local function payloads(...)
    local args = pack(...)
    while args.n > 0 and args[args.n] == nil do args.n = args.n - 1 end
    return args
end

function P.send(dest, topic, ...)
    if not is_text(dest) then
        return nil, invalid("process.send: the destination must be a pid or a registered name, got " .. what(dest))
    end
    local err = check_topic("send", topic)
    if err then return nil, err end
    if sub(topic, 1, 1) == "@" then
        return nil, invalid("process.send: topics starting with @ are reserved (" .. topic .. ")")
    end
    local denied = check("process.send", dest)
    if denied then return nil, denied end
    return B.send(current().pid, dest, topic, payloads(...))
end

function P.inbox()
    local st = current()
    if st.inbox == nil then
        st.inbox = channel.new(0)
        drain(st)
    end
    return st.inbox
end

function P.events()
    local st = current()
    if st.events == nil then
        st.events = channel.new(0)
        local q = st.pending_events
        for i = q.head, q.tail do st.events:post(q[i]) end
        st.pending_events = queue()
    end
    return st.events
end

function P.listen(topic, opts)
    local err = check_topic("listen", topic)
    if err then error(err, 2) end
    local st = current()
    local entry = st.topics[topic]
    if entry then return entry.ch end
    entry = { ch = channel.new(0), message = type(opts) == "table" and opts.message == true }
    st.topics[topic] = entry
    entry.topic = topic
    drain(st)
    return entry.ch
end

function P.unlisten(ch)
    local st = current()
    for topic, entry in pairs(st.topics) do
        if entry.ch == ch then
            st.topics[topic] = nil
            return true
        end
    end
    return false
end

function P.get_options()
    local o = current().options
    return { trap_links = o.trap_links, upgradable = o.upgradable }
end

function P.set_options(opts)
    if type(opts) ~= "table" then return nil, invalid("process.set_options: options must be a table") end
    local o = current().options
    for k, v in pairs(opts) do
        if k ~= "trap_links" and k ~= "upgradable" then
            return nil, invalid("process.set_options: unknown option " .. tostring(k))
        end
        if type(v) ~= "boolean" then
            return nil, invalid(fmt("process.set_options: %s must be a boolean, got %s", k, type(v)))
        end
    end
    for k, v in pairs(opts) do o[k] = v end
    return true
end

local function target_call(fname)
    return function(dest, ...)
        if not is_text(dest) then
            return nil, invalid(fmt("process.%s: expected a pid or a registered name, got %s", fname, what(dest)))
        end
        local denied = check("process." .. fname, dest)
        if denied then return nil, denied end
        return B[fname](current().pid, dest, ...)
    end
end
P.terminate = target_call("terminate")
P.monitor = target_call("monitor")
P.unmonitor = target_call("unmonitor")
P.link = target_call("link")
P.unlink = target_call("unlink")

function P.cancel(dest, reason)
    if not is_text(dest) then
        return nil, invalid("process.cancel: expected a pid or a registered name, got " .. what(dest))
    end
    if reason ~= nil and type(reason) ~= "string" then reason = tostring(reason) end
    if reason ~= nil and utf8len(reason) == nil then
        return nil, invalid("process.cancel: the reason must be text, got a binary (non-UTF-8) string")
    end
    local denied = check("process.cancel", dest)
    if denied then return nil, denied end
    return B.cancel(current().pid, dest, reason)
end

-- security context of a spawned process: plain data the host can carry to another VM
local function security_of(spawner)
    local actor, scope = spawner.actor, spawner.scope
    if actor == nil and scope == nil then return nil end
    local out = {}
    if actor ~= nil then out.actor = { id = actor:id(), meta = actor:meta() } end
    if scope ~= nil then out.policies = scope:policy_ids() end
    return out
end

-- the permissions a spawn needs: the spawn action on the entry, process.host on the host, and
-- process.context / process.security when the spawner carries them
local function spawn_denied(spawner, action, id, host)
    local denied = check(action, id) or check("process.host", host)
    if denied == nil and spawner.context ~= nil then denied = check("process.context", id) end
    if denied == nil and (spawner.actor ~= nil or spawner.scope ~= nil) then denied = check("process.security", id) end
    return denied
end

local SPAWN_ACTION = { [false] = { [false] = "process.spawn", [true] = "process.spawn.monitored" },
                       [true] = { [false] = "process.spawn.linked", [true] = "process.spawn.linked.monitored" } }

local function spawn_with(spawner, link, monitor, id, host, ...)
    if not is_text(id) then
        return nil, invalid("process.spawn: the entry id must be a string, got " .. what(id))
    end
    if not is_text(host) then
        return nil, invalid("process.spawn: the host id must be a string, got " .. what(host))
    end
    local denied = spawn_denied(spawner, SPAWN_ACTION[link][monitor], id, host)
    if denied then return nil, denied end
    local opts = { link = link, monitor = monitor, name = spawner.name, context = spawner.context,
                   security = security_of(spawner), messages = spawner.messages }
    return B.spawn(current().pid, id, host, opts, pack(...))
end

local function exec_with(spawner, id, host, ...)
    if not is_text(id) then
        return nil, invalid("process.exec: the entry id must be a string, got " .. what(id))
    end
    if not is_text(host) then
        return nil, invalid("process.exec: the host id must be a string, got " .. what(host))
    end
    local denied = spawn_denied(spawner, "process.spawn", id, host)
    if denied then return nil, denied end
    local opts = { name = spawner.name, context = spawner.context, security = security_of(spawner),
                   messages = spawner.messages }
    return B.exec(current().pid, id, host, opts, pack(...))
end

-- Spawner: immutable; every with_* returns a new one
local Spawner = {}
Spawner.__index = Spawner
Spawner.__name = "process.Spawner"
local EMPTY = setmetatable({}, Spawner)

local function derive(s, k, v)
    local out = {}
    for key, val in pairs(s) do out[key] = val end
    out[k] = v
    return setmetatable(out, Spawner)
end

function Spawner:with_context(ctx)
    if type(ctx) ~= "table" then error(invalid("process.with_context: the context must be a table"), 2) end
    local merged = {}
    for k, v in pairs(self.context or {}) do merged[k] = v end
    for k, v in pairs(ctx) do merged[k] = v end
    return derive(self, "context", merged)
end
function Spawner:with_actor(actor)
    if actor ~= nil and not sec.is_actor(actor) then
        error(invalid("spawner:with_actor: expected an actor from security.new_actor"), 2)
    end
    return derive(self, "actor", actor)
end
function Spawner:with_scope(scope)
    if scope ~= nil and not sec.is_scope(scope) then
        error(invalid("spawner:with_scope: expected a scope from security.new_scope"), 2)
    end
    return derive(self, "scope", scope)
end
function Spawner:with_name(name)
    if not is_text(name) then error(invalid("spawner:with_name: expected a name, got " .. what(name)), 2) end
    return derive(self, "name", name)
end
function Spawner:with_message(topic, ...)
    local err = check_topic("with_message", topic)
    if err then error(err, 2) end
    local list = {}
    for i, m in ipairs(self.messages or {}) do list[i] = m end
    list[#list + 1] = { topic = topic, args = payloads(...) }
    return derive(self, "messages", list)
end
function Spawner:with_options(_) return self end
function Spawner:spawn(id, host, ...) return spawn_with(self, false, false, id, host, ...) end
function Spawner:spawn_monitored(id, host, ...) return spawn_with(self, false, true, id, host, ...) end
function Spawner:spawn_linked(id, host, ...) return spawn_with(self, true, false, id, host, ...) end
function Spawner:spawn_linked_monitored(id, host, ...) return spawn_with(self, true, true, id, host, ...) end
function Spawner:exec(id, host, ...) return exec_with(self, id, host, ...) end

function P.spawn(id, host, ...) return spawn_with(EMPTY, false, false, id, host, ...) end
function P.spawn_monitored(id, host, ...) return spawn_with(EMPTY, false, true, id, host, ...) end
function P.spawn_linked(id, host, ...) return spawn_with(EMPTY, true, false, id, host, ...) end
function P.spawn_linked_monitored(id, host, ...) return spawn_with(EMPTY, true, true, id, host, ...) end
function P.exec(id, host, ...) return exec_with(EMPTY, id, host, ...) end
function P.with_context(ctx) return EMPTY:with_context(ctx) end
function P.with_options(opts) return EMPTY:with_options(opts) end

--- Replace this process's code, keeping its pid, mailbox, links, monitors, names and security:
--- the current `main` ends here and the new one (of `id`, default: the same entry at its current
--- registry version) starts with `...` as its arguments. Only the process's main task may call it.
function P.upgrade(id, ...)
    local st = current()
    if st.task == nil or S.running ~= st.task then
        return nil, invalid("process.upgrade: only the process's own main function can upgrade it")
    end
    if id ~= nil and (type(id) ~= "string" or id == "") then
        return nil, invalid("process.upgrade: the entry id must be a string or nil, got " .. type(id))
    end
    local ok, err = B.upgrade(st.pid, id, pack(...))
    if not ok then return nil, err end
    error(UPGRADE, 0) -- unwinds `main`; the host starts the new code in its place
end

-- names
local R = {}
function R.register(name, pid)
    if not is_text(name) then
        return nil, invalid("process.registry.register: the name must be a non-empty string, got " .. what(name))
    end
    if pid ~= nil and not is_text(pid) then
        return nil, invalid("process.registry.register: the pid must be a pid string, got " .. what(pid))
    end
    local denied = check("process.registry.register", name)
    if denied then return nil, denied end
    return B.register(current().pid, name, pid or current().pid)
end
function R.lookup(name)
    if not is_text(name) then
        return nil, invalid("process.registry.lookup: the name must be a non-empty string, got " .. what(name))
    end
    return B.lookup(name)
end
function R.unregister(name)
    if not is_text(name) then return false end
    return B.unregister(current().pid, name)
end
P.registry = readonly(R, "process.registry")

V.public = readonly(P, "process")
V.EVENT = EVENT
V.unpack = unpack
V.select = select
return V
