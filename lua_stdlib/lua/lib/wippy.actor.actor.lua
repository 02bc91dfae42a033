-- wippy.actor:actor, the library of Wippy's `wippy/actor` component, provided by this runtime.
--   actor.new(state, handlers, proc?) -> actor;  actor:run() (or actor.run()) -> the exit result
--   actor.exit(result) -> exit signal;  actor.next(topic, payload?) -> next signal
--
-- run() takes one item at a time from the process inbox, its events and the channels handlers
-- registered, so handlers never run concurrently and share `state` without locks:
--   * a message with topic T: handlers[T](state, data, T, from), else handlers.__default with the
--     same arguments, else it is dropped. `data` is the payload's data (nil without a payload, a
--     list of data when several were sent); `from` is the sender's pid.
--   * an event: handlers.__on_event(state, event, event.kind, event.from); a CANCEL event then goes
--     to handlers.__on_cancel(state, event, event.kind, event.from) too.
--   * a value on a registered channel: its handler(state, value, ok, channel_id); a closed channel
--     is handed over once with ok = false, then unregistered.
-- handlers.__init(state) runs once, before the first item. Any handler may return
-- actor.exit(result): run() then returns result (a process doing `return a:run()` exits with it);
-- or actor.next(topic, payload): the handler of that topic runs at once (same `from`; the current
-- payload when payload is nil), then its own return value counts.
--
-- `state` gains helpers (through a metatable when it has none, so it stays plain data):
-- add_handler(topic, fn) / remove_handler(topic); register_channel(ch, fn) / unregister_channel(ch);
-- next (= actor.next); async(fn): fn runs in a coroutine of the process and what it returns comes
-- back to the loop: actor.next / actor.exit act as from a handler, any other non-nil value goes to
-- handlers.__on_internal_message(state, value, "async"); an error raised by fn fails the actor.
-- wait(topic, timeout?): blocks until a message with that topic arrives (its payload data, nil) or
-- the timeout (a duration as time.timer takes: "5s", or nanoseconds) passes (nil, "timeout"); once
-- waited on, that topic is kept for later waits, not for its handler.
-- `proc` (optional, for tests) stands in for the process: {inbox(), events(), listen?(topic), event?}.

local time = require("time")

local type, pairs, tostring, error, pcall, rawget, getmetatable, setmetatable =
    type, pairs, tostring, error, pcall, rawget, getmetatable, setmetatable
local sub, fmt = string.sub, string.format
local spawn = coroutine.spawn
local new_channel, select_channel = channel.new, channel.select

local function invalid(message) return errors.new({ kind = errors.INVALID, message = message }) end

local function is_signal(v, field) return type(v) == "table" and rawget(v, field) == true end
local function is_exit(v) return is_signal(v, "_actor_exit") end
local function is_next(v) return is_signal(v, "_actor_next") end

-- the data a message carries: nil, the one payload's data, or a list of each payload's data
local function message_data(msg)
    local p = msg:payload()
    if p == nil then return nil end
    if p.data ~= nil then return (p:data()) end
    local out = {}
    for i = 1, #p do out[i] = (p[i]:data()) end
    return out
end

local M = {}

function M.exit(result) return { _actor_exit = true, result = result } end

function M.next(topic, data)
    if type(topic) ~= "string" or topic == "" then
        error(invalid("actor.next: the topic must be a non-empty string, got " .. type(topic)), 2)
    end
    return { _actor_next = true, topic = topic, payload = data }
end

local function default_proc()
    return { inbox = process.inbox, events = process.events, listen = process.listen, event = process.event }
end

--- The loop of one run: returns the exit result.
local function run(state, handlers, proc)
    proc = proc or default_proc()
    local inbox, events = proc.inbox(), proc.events()
    local listen = proc.listen or process.listen
    local cancel_kind = (proc.event or process.event).CANCEL
    local internal = new_channel(0) -- what async functions return
    local topics, channels = {}, {} -- topic -> handler; channel -> {handler, id}
    local cases, dirty = nil, true

    for name, fn in pairs(handlers) do
        if type(name) == "string" and sub(name, 1, 2) ~= "__" then topics[name] = fn end
    end

    -- a topic handler and the chain of actor.next it starts; returns what the last one returned
    local function dispatch(topic, data, from)
        while true do
            local fn = topics[topic] or handlers.__default
            if fn == nil then return nil end
            local reply = fn(state, data, topic, from)
            if not is_next(reply) then return reply end
            topic = reply.topic
            if reply.payload ~= nil then data = reply.payload end
        end
    end

    -- a handler's return value: true and the result when the actor is to exit
    local function outcome(reply, from)
        if is_next(reply) then reply = dispatch(reply.topic, reply.payload, from) end
        if is_exit(reply) then return true, reply.result end
        return false, nil
    end

    local function on_event(ev)
        local kind, from = ev.kind, ev.from
        if handlers.__on_event then
            local stop, result = outcome(handlers.__on_event(state, ev, kind, from), from)
            if stop then return true, result end
        end
        if kind == cancel_kind and handlers.__on_cancel then
            return outcome(handlers.__on_cancel(state, ev, kind, from), from)
        end
        return false, nil
    end

    local function on_async(done)
        local value = done.value
        if not done.ok then
            if type(value) == "string" then error("actor: state.async function failed: " .. value, 0) end
            error(value, 0)
        end
        if is_next(value) or is_exit(value) then return outcome(value, nil) end
        if value ~= nil and handlers.__on_internal_message then
            return outcome(handlers.__on_internal_message(state, value, "async", nil), nil)
        end
        return false, nil
    end

    local helpers = { next = M.next }

    function helpers.add_handler(topic, fn)
        if type(topic) ~= "string" or topic == "" or type(fn) ~= "function" then
            error(invalid("state.add_handler: expected a topic and a handler function"), 2)
        end
        topics[topic] = fn
        return true
    end

    function helpers.remove_handler(topic)
        if topics[topic] == nil then return false end
        topics[topic] = nil
        return true
    end

    function helpers.register_channel(ch, fn)
        if type(ch) ~= "table" or type(fn) ~= "function" then
            error(invalid("state.register_channel: expected a channel and a handler function"), 2)
        end
        channels[ch] = { handler = fn, id = tostring(ch) }
        dirty = true
        return true
    end

    function helpers.unregister_channel(ch)
        if ch == nil or channels[ch] == nil then return false end
        channels[ch] = nil
        dirty = true
        return true
    end

    function helpers.async(fn)
        if type(fn) ~= "function" then error(invalid("state.async: expected a function"), 2) end
        spawn(function()
            local ok, value = pcall(fn)
            internal:send({ ok = ok, value = value })
        end)
        return true
    end

    function helpers.wait(topic, timeout)
        if type(topic) ~= "string" or topic == "" then
            error(invalid("state.wait: the topic must be a non-empty string"), 2)
        end
        local ch = listen(topic)
        if timeout == nil then return (ch:receive()), nil end
        local timer, err = time.timer(timeout)
        if timer == nil then return nil, err end
        local timer_ch = timer:channel()
        local r = select_channel({ ch:case_receive(), timer_ch:case_receive() })
        timer:stop()
        if r.channel == ch then return r.value, nil end
        return nil, "timeout"
    end

    -- behind a metatable when the state has none, so the state stays plain data (pairs, results)
    if getmetatable(state) == nil then
        setmetatable(state, { __index = helpers })
    else
        for name, fn in pairs(helpers) do state[name] = fn end
    end

    if handlers.__init then
        local stop, result = outcome(handlers.__init(state), nil)
        if stop then return result end
    end

    while true do
        if dirty then
            cases = { inbox:case_receive(), events:case_receive(), internal:case_receive() }
            for ch in pairs(channels) do cases[#cases + 1] = ch:case_receive() end
            dirty = false
        end
        local r = select_channel(cases)
        local ch, value = r.channel, r.value
        local stop, result = false, nil
        if ch == inbox or ch == events then
            if not r.ok then return { status = "completed" } end -- the process's channels closed
            if ch == inbox then
                local from = value:from()
                stop, result = outcome(dispatch(value:topic(), message_data(value), from), from)
            else
                stop, result = on_event(value)
            end
        elseif ch == internal then
            stop, result = on_async(value)
        else
            local reg = channels[ch]
            if reg ~= nil then
                if not r.ok then
                    channels[ch] = nil
                    dirty = true
                end
                stop, result = outcome(reg.handler(state, value, r.ok, reg.id), nil)
            end
        end
        if stop then return result end
    end
end

function M.new(state, handlers, proc)
    if state == nil then state = {} end
    if type(state) ~= "table" then
        error(invalid("actor.new: the state must be a table, got " .. type(state)), 2)
    end
    if type(handlers) ~= "table" then
        error(invalid("actor.new: the handlers must be a table, got " .. type(handlers)), 2)
    end
    for name, fn in pairs(handlers) do
        if type(fn) ~= "function" then
            error(invalid(fmt("actor.new: handler %s must be a function, got %s", tostring(name), type(fn))), 2)
        end
    end
    if proc ~= nil and (type(proc) ~= "table" or type(proc.inbox) ~= "function" or type(proc.events) ~= "function") then
        error(invalid("actor.new: the process must be a table with inbox() and events()"), 2)
    end
    return { run = function() return run(state, handlers, proc) end }
end

return M
