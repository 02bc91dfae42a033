-- `time`, the scheduling part: sleep, after, timer, ticker and duration constants. Durations are
-- a number of nanoseconds or a Go duration string ("1h30m", "500ms"). Timer channels deliver the
-- current Unix time in nanoseconds (Wippy delivers a Time object; Time values arrive with the
-- rest of the time module, whose other functions raise UNAVAILABLE until then).

local S, channel, errors, host = ...
local type, tonumber, error, setmetatable, tostring = type, tonumber, error, setmetatable, tostring

local NS = { NANOSECOND = 1, MICROSECOND = 1000, MILLISECOND = 1000000, SECOND = 1000000000,
             MINUTE = 60000000000, HOUR = 3600000000000 }

local function nanos(d, what)
    local t = type(d)
    if t == "number" then return d end
    if t == "string" then
        local ns, err = host.parse_duration(d)
        if ns == nil then error(what .. ": " .. err, 3) end
        return ns
    end
    if t == "table" and type(d.nanoseconds) == "function" then return d:nanoseconds() end
    error(what .. ": expected a duration (nanoseconds or a string like \"1s\"), got " .. t, 3)
end

local M = {}
for k, v in pairs(NS) do M[k] = v end

function M.sleep(d)
    local ns = nanos(d, "time.sleep")
    if ns <= 0 then return true end
    S.request({ kind = "sleep", seconds = ns / 1e9 })
    return true
end

function M.after(d)
    local ns = nanos(d, "time.after")
    local ch = channel.new(1)
    host.call_later(ns / 1e9, function() ch:post(host.now_ns()) end)
    return ch
end

local Timer = {}
Timer.__index = Timer
Timer.__name = "timer"
function Timer:response() return self._ch end
function Timer:channel() return self._ch end
function Timer:stop()
    if self._handle == nil then return false end
    host.cancel(self._handle)
    self._handle = nil
    return true
end
function Timer:reset(d)
    local ns = nanos(d, "timer:reset")
    local was = self:stop()
    local ch = self._ch
    local this = self
    self._handle = host.call_later(ns / 1e9, function() this._handle = nil; ch:post(host.now_ns()) end)
    return was
end

function M.timer(d)
    local t = setmetatable({ _ch = channel.new(1) }, Timer)
    t:reset(d)
    return t
end

local Ticker = {}
Ticker.__index = Ticker
Ticker.__name = "ticker"
function Ticker:response() return self._ch end
function Ticker:channel() return self._ch end
function Ticker:stop()
    if self._handle == nil then return false end
    host.cancel(self._handle)
    self._handle = nil
    return true
end

function M.ticker(d)
    local ns = nanos(d, "time.ticker")
    if ns <= 0 then error("time.ticker: the interval must be positive", 2) end
    local t = setmetatable({ _ch = channel.new(1) }, Ticker)
    local ch = t._ch
    local function tick()
        if #ch == 0 then ch:post(host.now_ns()) end -- a slow reader misses ticks, as in Go
        t._handle = host.call_later(ns / 1e9, tick)
    end
    t._handle = host.call_later(ns / 1e9, tick)
    return t
end

local function unavailable(name)
    return function()
        error(errors._make("UNAVAILABLE", "time." .. name .. " is not implemented in this runtime yet"), 2)
    end
end
for _, name in ipairs({ "now", "parse", "parse_duration", "unix", "date", "load_location", "fixed_zone" }) do
    M[name] = unavailable(name)
end

return M
