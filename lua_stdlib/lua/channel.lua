-- Channels with Go semantics, switching tasks inside Lua (see scheduler.lua).
--   channel.new(size=0); ch:send(v) -> true (blocks; raises on a closed channel);
--   ch:receive() -> v, ok (nil, false once closed and drained); ch:close() (idempotent);
--   ch:case_send(v) / ch:case_receive() for channel.select{..., default = true?}
--     -> {channel = ch, value = v, ok = ok} or {default = true, ok = true}
-- Loaded with the scheduler table as its argument; returns the `channel` module table.

local S = ...
local BLOCK, wake = S.BLOCK, S.wake
local yield = coroutine.yield
local running = S.current_co
local setmetatable, error, random, type = setmetatable, error, math.random, type

local Channel = {}
Channel.__index = Channel
Channel.__name = "channel"

local function queue() return { head = 1, tail = 0 } end
local function qpush(q, v) q.tail = q.tail + 1; q[q.tail] = v end
local function qpop(q)
    if q.head > q.tail then return nil end
    local v = q[q.head]
    q[q.head] = nil
    q.head = q.head + 1
    return v
end
local function qlen(q) return q.tail - q.head + 1 end

-- A waiter is {co, value, sel}; `sel` (shared by the cases of one select) is set `fired` by the
-- first case that completes, and waiters of a fired select are skipped.
local function take_waiter(q)
    while true do
        local w = qpop(q)
        if w == nil then return nil end
        if w.sel == nil or not w.sel.fired then return w end
    end
end

local function new(size)
    size = size or 0
    if type(size) ~= "number" or size < 0 then error("channel.new: size must be a non-negative integer", 2) end
    return setmetatable({ size = size, buf = queue(), recvq = queue(), sendq = queue(), closed = false }, Channel)
end

local function deliver_to_receiver(w, v)
    if w.sel then
        w.sel.fired = true
        wake(w.co, { channel = w.ch, value = v, ok = true })
    else
        wake(w.co, v, true)
    end
end

local function release_sender(w)
    if w.sel then
        w.sel.fired = true
        wake(w.co, { channel = w.ch, value = w.value, ok = true })
    else
        wake(w.co, true)
    end
end

-- Try to complete without blocking. Returns handled, result...
local function try_send(ch, v)
    if ch.closed then error("send on closed channel", 3) end
    local r = take_waiter(ch.recvq)
    if r then deliver_to_receiver(r, v); return true end
    if qlen(ch.buf) < ch.size then qpush(ch.buf, v); return true end
    return false
end

local function try_receive(ch)
    if qlen(ch.buf) > 0 then
        local v = qpop(ch.buf)
        local s = take_waiter(ch.sendq)
        if s then qpush(ch.buf, s.value); release_sender(s) end
        return true, v, true
    end
    local s = take_waiter(ch.sendq)
    if s then release_sender(s); return true, s.value, true end
    if ch.closed then return true, nil, false end
    return false
end

function Channel:send(v)
    if try_send(self, v) then return true end
    local co = running()
    qpush(self.sendq, { co = co, value = v, ch = self })
    local ok = yield(BLOCK)
    if ok == "closed" then error("send on closed channel", 2) end
    return true
end

function Channel:receive()
    local done, v, ok = try_receive(self)
    if done then return v, ok end
    qpush(self.recvq, { co = running(), ch = self })
    return yield(BLOCK)
end

--- From the host: deliver a value without ever blocking (buffers beyond `size` if needed).
function Channel:post(v)
    if self.closed then return false end
    local r = take_waiter(self.recvq)
    if r then deliver_to_receiver(r, v) else qpush(self.buf, v) end
    return true
end

function Channel:close()
    if self.closed then return end
    self.closed = true
    while true do
        local r = take_waiter(self.recvq)
        if r == nil then break end
        if r.sel then
            r.sel.fired = true
            wake(r.co, { channel = self, value = nil, ok = false })
        else
            wake(r.co, nil, false)
        end
    end
    while true do
        local s = take_waiter(self.sendq)
        if s == nil then break end
        if s.sel then s.sel.fired = true end
        wake(s.co, "closed")
    end
end

function Channel:case_send(v) return { ch = self, send = true, value = v } end
function Channel:case_receive() return { ch = self, send = false } end
function Channel:is_closed() return self.closed end
function Channel:__len() return qlen(self.buf) end

local function select(cases)
    local n = #cases
    -- Ready cases, in random order (as Go does), so no case starves.
    local start = n > 1 and random(n) or 1
    for i = 0, n - 1 do
        local c = cases[((start + i - 1) % n) + 1]
        if c.send then
            if c.ch.closed then error("send on closed channel", 2) end
            if try_send(c.ch, c.value) then return { channel = c.ch, value = c.value, ok = true } end
        else
            local done, v, ok = try_receive(c.ch)
            if done then return { channel = c.ch, value = v, ok = ok } end
        end
    end
    if cases.default then return { default = true, ok = true } end
    if n == 0 then error("channel.select: no cases and no default", 2) end
    local sel = { fired = false }
    local co = running()
    for i = 1, n do
        local c = cases[i]
        if c.send then
            qpush(c.ch.sendq, { co = co, value = c.value, ch = c.ch, sel = sel })
        else
            qpush(c.ch.recvq, { co = co, ch = c.ch, sel = sel })
        end
    end
    local r = yield(BLOCK)
    if r == "closed" then error("send on closed channel", 2) end
    return r
end

return { new = new, select = select, Channel = Channel }
