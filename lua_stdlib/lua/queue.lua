-- The `queue` module: publish to queues, and the message a queue.consumer's handler is processing.
--   queue.publish(queue_id, data, headers?) -> true, err     (permission queue.publish on the queue id)
--   queue.message() -> msg, err                              (inside a consumer's handler only)
--   queue.info(queue_id) -> {message_count, consumer_count, ready, driver}, err
--   msg:id() msg:header(k) msg:headers() msg:ack() msg:nack()   (each -> value, err; settling is single-shot)
-- Loaded with (host bridge, errors, scheduler, security lib).

local B, errors, S, sec = ...
local setmetatable, type, pairs, tostring = setmetatable, type, pairs, tostring

local M = {}

local function invalid(msg) return errors._make("INVALID", msg) end

local function queue_id(id, fn)
    if type(id) ~= "string" or id == "" then return nil, invalid("queue." .. fn .. ": queue id must be a non-empty string") end
    return id, nil
end

function M.publish(id, data, headers)
    local q, bad = queue_id(id, "publish")
    if bad then return nil, bad end
    if data == nil then return nil, invalid("queue.publish: message data required") end
    if data == "" then return nil, invalid("queue.publish: message data cannot be empty") end
    if headers ~= nil then
        if type(headers) ~= "table" then return nil, invalid("queue.publish: headers must be a table") end
        for k, v in pairs(headers) do
            local tv = type(v)
            if type(k) ~= "string" or (tv ~= "string" and tv ~= "number" and tv ~= "boolean") then
                return nil, invalid("queue.publish: header " .. tostring(k) .. " must map a string to a string, number or boolean")
            end
            if k:sub(1, 2) == "x_" or k == "attempts" then
                return nil, invalid("queue.publish: header " .. k .. " is reserved for dead-letter bookkeeping")
            end
        end
    end
    local denied = sec.check("queue.publish", q)
    if denied then return nil, denied end
    return B.publish(q, data, headers)
end

function M.info(id)
    local q, bad = queue_id(id, "info")
    if bad then return nil, bad end
    local denied = sec.check("queue.info", q)
    if denied then return nil, denied end
    return B.info(q)
end

local Message = { __name = "queue.Message", __metatable = false }
Message.__index = Message

local function live(self)
    if B.released(self._d) then return invalid("queue.Message released (the handler returned)") end
    return nil
end

function Message:id()
    local bad = live(self)
    if bad then return nil, bad end
    return B.id(self._d), nil
end
function Message:header(k)
    local bad = live(self)
    if bad then return nil, bad end
    if type(k) ~= "string" then return nil, invalid("queue.Message:header: key must be a string") end
    return B.header(self._d, k), nil
end
function Message:headers()
    local bad = live(self)
    if bad then return nil, bad end
    return B.headers(self._d), nil
end
local function settle(ok)
    return function(self)
        local bad = live(self)
        if bad then return nil, bad end
        return B.settle(self._d, ok)
    end
end
Message.ack = settle(true)
Message.nack = settle(false)

function M.message()
    local t = S.running
    while t ~= nil do
        local x = t.call_data
        if type(x) == "table" and x.queue_delivery ~= nil then
            return setmetatable({ _d = x.queue_delivery }, Message), nil
        end
        if x ~= nil then break end
        t = t.parent
    end
    return nil, invalid("queue.message: no delivery found in context (call it from a queue.consumer's handler)")
end

return M
