-- `time`: Time, Duration and Location values, parsing and formatting with Go layouts, sleeps,
-- timers and tickers (see _mod_time.py for the API list). Loaded with (scheduler, channel module,
-- errors module, host bridge); the bridge does calendar, zone and layout work in Python.
--
-- Values are empty proxy tables whose state sits in weak tables keyed by the proxy, so Lua code
-- can neither see nor change it: a Time is {s = Unix seconds, n = nanoseconds, loc, z = zone,
-- m = monotonic reading or nil}, with its wall fields filled in on first use. Like Go, only
-- time.now() carries a monotonic reading; add() keeps it, and sub/compare use it when both
-- sides have one.

local S, channel, errors, host = ...
local type, tostring, error, setmetatable, tointeger, floor, ceil, fmt =
    type, tostring, error, setmetatable, math.tointeger, math.floor, math.ceil, string.format
local utf8len = utf8.len

local SEC = 1000000000
local MAXD, MIND = math.maxinteger, math.mininteger
local ZERO_UNIX = -62135596800 -- Go's zero Time: January 1, year 1, UTC
local LAYOUTS = host.layouts
local RFC3339 = LAYOUTS.RFC3339
local STRING_LAYOUT = "2006-01-02 15:04:05.999999999 -0700 MST"

local TIMES = setmetatable({}, { __mode = "k" })
local DURATIONS = setmetatable({}, { __mode = "k" })
local LOCATIONS = setmetatable({}, { __mode = "k" })

local function invalid(message) return errors._make("INVALID", message, false) end

local function argerror(n, fname, message, level)
    error(fmt("bad argument #%d to %s (%s)", n, fname, message), level + 1)
end

local function immutable(_, k)
    error("attempt to modify an immutable time value (field " .. tostring(k) .. ")", 2)
end

--- An integer from a number argument, truncating floats as Go's CheckInt does.
local function int_arg(v, n, fname)
    if type(v) ~= "number" then argerror(n, fname, "number expected, got " .. type(v), 3) end
    local i = tointeger(v)
    if i then return i end
    if v ~= v or v >= 2 ^ 63 or v < -2 ^ 63 then argerror(n, fname, "number out of range", 3) end
    return tointeger(v >= 0 and floor(v) or ceil(v))
end

--- A string argument; text only (the host reads strings as UTF-8, so binary data is refused here).
local function str_arg(v, n, fname)
    local t = type(v)
    if t == "string" then
        if not utf8len(v) then argerror(n, fname, "string is not UTF-8 text", 3) end
        return v
    end
    if t == "number" then return tostring(v) end
    argerror(n, fname, "string expected, got " .. t, 3)
end

--- Whole-number floats as integers, so `d:hours()` prints "24" as Wippy does, not "24.0".
local function num(x) return tointeger(x) or x end

-- Durations -----------------------------------------------------------------------------------
local Duration = {}
local DurationMT = { __index = Duration, __name = "time.Duration", __metatable = false, __newindex = immutable }

local function new_duration(ns)
    local d = setmetatable({}, DurationMT)
    DURATIONS[d] = ns
    return d
end

--- Nanoseconds from a duration argument: a number of nanoseconds, a Go duration string or a
--- Duration; nil and a message otherwise.
local function to_ns(v)
    local t = type(v)
    if t == "number" then
        local i = tointeger(v)
        if i then return i end
        if v ~= v or v >= 2 ^ 63 or v < -2 ^ 63 then return nil, "duration out of range" end
        return tointeger(v >= 0 and floor(v) or ceil(v)) -- Go converts by truncation
    elseif t == "string" then
        if not utf8len(v) then return nil, "invalid duration: not UTF-8 text" end
        return host.parse_duration(v)
    end
    local ns = DURATIONS[v]
    if ns then return ns end
    return nil, "duration must be number or string, got " .. t
end

local function dur(d, fname)
    local ns = DURATIONS[d]
    if ns == nil then argerror(1, fname, "duration expected", 3) end
    return ns
end

-- Go's integer division truncates toward zero
local function quot(a, b)
    local q = a // b
    if q < 0 and q * b ~= a then q = q + 1 end
    return q
end

local function split(ns, unit)
    local q = quot(ns, unit)
    return q + (ns - q * unit) / unit
end

function Duration:nanoseconds() return dur(self, "nanoseconds") end
function Duration:microseconds() return quot(dur(self, "microseconds"), 1000) end
function Duration:milliseconds() return quot(dur(self, "milliseconds"), 1000000) end
function Duration:seconds() return num(split(dur(self, "seconds"), SEC)) end
function Duration:minutes() return num(split(dur(self, "minutes"), 60 * SEC)) end
function Duration:hours() return num(split(dur(self, "hours"), 3600 * SEC)) end
DurationMT.__tostring = function(d) return host.format_duration(DURATIONS[d]) end
DurationMT.__eq = function(a, b) return DURATIONS[a] ~= nil and DURATIONS[a] == DURATIONS[b] end
DurationMT.__lt = function(a, b)
    local x, y = DURATIONS[a], DURATIONS[b]
    if x == nil or y == nil then error("attempt to compare time.Duration with " .. type(x and b or a), 2) end
    return x < y
end
DurationMT.__le = function(a, b)
    local x, y = DURATIONS[a], DURATIONS[b]
    if x == nil or y == nil then error("attempt to compare time.Duration with " .. type(x and b or a), 2) end
    return x <= y
end

-- Locations -----------------------------------------------------------------------------------
local Location = {}
local LocationMT = { __index = Location, __name = "time.Location", __metatable = false, __newindex = immutable }

local function new_location(zone)
    local l = setmetatable({}, LocationMT)
    LOCATIONS[l] = { z = zone, name = host.zone_name(zone) }
    return l
end

function Location:string()
    local l = LOCATIONS[self]
    if l == nil then argerror(1, "string", "location expected", 2) end
    return l.name
end
LocationMT.__tostring = function(l) return LOCATIONS[l].name end

local UTC_LOC = new_location(host.utc)
local LOCAL_LOC = new_location(host.localtz)
local loaded = {}

-- Times ---------------------------------------------------------------------------------------
local Time = {}
local TimeMT = { __index = Time, __name = "time.Time", __metatable = false, __newindex = immutable }

local function new_time(s, n, loc, m)
    local t = setmetatable({}, TimeMT)
    TIMES[t] = { s = s, n = n, loc = loc, z = LOCATIONS[loc].z, m = m }
    return t
end

local function unix_time(ns) return new_time(ns // SEC, ns % SEC, LOCAL_LOC) end

local function rec(t, fname)
    local r = TIMES[t]
    if r == nil then argerror(1, fname, "time expected", 3) end
    return r
end

local function other(u, fname)
    local r = TIMES[u]
    if r == nil then argerror(2, fname, "time expected", 3) end
    return r
end

local function wall(r)
    if r.y == nil then
        r.y, r.mo, r.d, r.h, r.mi, r.sec, r.wd, r.yd, r.off, r.abbr = host.fields(r.s, r.z)
    end
    return r
end

local function plus(r, d)
    local s, n = r.s + d // SEC, r.n + d % SEC
    if n >= SEC then s, n = s + 1, n - SEC end
    return s, n
end

local function before(r, q)
    if r.m and q.m then return r.m < q.m end
    return r.s < q.s or (r.s == q.s and r.n < q.n)
end

local function equal(r, q)
    if r.m and q.m then return r.m == q.m end
    return r.s == q.s and r.n == q.n
end

function Time:add(d)
    local r = rec(self, "add")
    local ns, err = to_ns(d)
    if ns == nil then argerror(2, "add", err, 2) end
    local s, n = plus(r, ns)
    local m = r.m
    if m then
        local te = m + ns
        if (ns < 0 and te > m) or (ns > 0 and te < m) then m = nil else m = te end
    end
    return new_time(s, n, r.loc, m)
end

function Time:sub(u)
    local r, q = rec(self, "sub"), other(u, "sub")
    if r.m and q.m then
        local d = r.m - q.m
        if d < 0 and r.m > q.m then return new_duration(MAXD) end
        if d > 0 and r.m < q.m then return new_duration(MIND) end
        return new_duration(d)
    end
    local d = (r.s - q.s) * SEC + (r.n - q.n) -- may wrap; checked the way Go checks it
    local s, n = plus(q, d)
    if s == r.s and n == r.n then return new_duration(d) end
    return new_duration(before(r, q) and MIND or MAXD)
end

function Time:add_date(years, months, days)
    local r = wall(rec(self, "add_date"))
    years, months, days = int_arg(years, 2, "add_date"), int_arg(months, 3, "add_date"), int_arg(days, 4, "add_date")
    local s, n = host.date(r.y + years, r.mo + months, r.d + days, r.h, r.mi, r.sec, r.n, r.z)
    if s == nil then error("add_date: " .. n, 2) end
    return new_time(s, n, r.loc)
end

function Time:before(u) return before(rec(self, "before"), other(u, "before")) end
function Time:after(u) return before(other(u, "after"), rec(self, "after")) end
function Time:equal(u) return equal(rec(self, "equal"), other(u, "equal")) end

function Time:format(layout)
    local r = rec(self, "format")
    return host.format(str_arg(layout, 2, "format"), r.s, r.n, r.z)
end
function Time:format_rfc3339()
    local r = rec(self, "format_rfc3339")
    return host.format(RFC3339, r.s, r.n, r.z)
end

function Time:unix() return rec(self, "unix").s end
function Time:unix_nano()
    local r = rec(self, "unix_nano")
    return r.s * SEC + r.n -- wraps outside 1678..2262, as Go's UnixNano
end
function Time:date()
    local r = wall(rec(self, "date"))
    return r.y, r.mo, r.d
end
function Time:clock()
    local r = wall(rec(self, "clock"))
    return r.h, r.mi, r.sec
end
function Time:year() return wall(rec(self, "year")).y end
function Time:month() return wall(rec(self, "month")).mo end
function Time:day() return wall(rec(self, "day")).d end
function Time:hour() return wall(rec(self, "hour")).h end
function Time:minute() return wall(rec(self, "minute")).mi end
function Time:second() return wall(rec(self, "second")).sec end
function Time:nanosecond() return rec(self, "nanosecond").n end
function Time:weekday() return wall(rec(self, "weekday")).wd end
function Time:year_day() return wall(rec(self, "year_day")).yd end
function Time:is_zero()
    local r = rec(self, "is_zero")
    return r.s == ZERO_UNIX and r.n == 0
end

function Time:utc()
    local r = rec(self, "utc")
    return new_time(r.s, r.n, UTC_LOC)
end
function Time:in_local()
    local r = rec(self, "in_local")
    return new_time(r.s, r.n, LOCAL_LOC)
end
function Time:in_location(loc)
    local r = rec(self, "in_location")
    if LOCATIONS[loc] == nil then argerror(2, "in_location", "location expected", 2) end
    return new_time(r.s, r.n, loc)
end
function Time:location() return rec(self, "location").loc end

local function rounded(self, d, nearest, fname)
    local r = rec(self, fname)
    local ns = DURATIONS[d]
    if ns == nil then argerror(2, fname, "duration expected", 3) end
    local s, n = host.round(r.s, r.n, ns, nearest)
    return new_time(s, n, r.loc)
end
function Time:round(d) return rounded(self, d, true, "round") end
function Time:truncate(d) return rounded(self, d, false, "truncate") end

-- Go's " m=+1.000000002" suffix for times carrying a monotonic reading
local function mono_suffix(m)
    local sign = "+"
    if m < 0 then sign, m = "-", -m end
    local secs = m // SEC
    local hi, lo = secs // SEC, secs % SEC
    local head = hi ~= 0 and fmt("%d%09d", hi, lo) or tostring(lo)
    return fmt(" m=%s%s.%09d", sign, head, m % SEC)
end

TimeMT.__tostring = function(t)
    local r = TIMES[t]
    local out = host.format(STRING_LAYOUT, r.s, r.n, r.z)
    if r.m then out = out .. mono_suffix(r.m) end
    return out
end
TimeMT.__eq = function(a, b)
    local r, q = TIMES[a], TIMES[b]
    return r ~= nil and q ~= nil and equal(r, q)
end
local function compare_error(a, b)
    error("attempt to compare time.Time with " .. (TIMES[a] and type(b) or type(a)), 3)
end
TimeMT.__lt = function(a, b)
    local r, q = TIMES[a], TIMES[b]
    if r == nil or q == nil then compare_error(a, b) end
    return before(r, q)
end
TimeMT.__le = function(a, b)
    local r, q = TIMES[a], TIMES[b]
    if r == nil or q == nil then compare_error(a, b) end
    return not before(q, r)
end

-- The module ----------------------------------------------------------------------------------
local M = {
    NANOSECOND = 1, MICROSECOND = 1000, MILLISECOND = 1000000, SECOND = SEC, MINUTE = 60 * SEC, HOUR = 3600 * SEC,
    utc = UTC_LOC, localtz = LOCAL_LOC,
}
for name, layout in pairs(LAYOUTS) do M[name] = layout end
for i, name in ipairs({ "JANUARY", "FEBRUARY", "MARCH", "APRIL", "MAY", "JUNE", "JULY", "AUGUST", "SEPTEMBER",
                        "OCTOBER", "NOVEMBER", "DECEMBER" }) do
    M[name] = i
end
for i, name in ipairs({ "SUNDAY", "MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY" }) do
    M[name] = i - 1
end

function M.now()
    local s, n, m = host.now()
    return new_time(s, n, LOCAL_LOC, m)
end

function M.unix(sec, nsec)
    sec, nsec = int_arg(sec, 1, "unix"), int_arg(nsec, 2, "unix")
    return new_time(sec + nsec // SEC, nsec % SEC, LOCAL_LOC)
end

local function location_arg(loc, n, fname)
    if loc == nil then return LOCAL_LOC end
    if LOCATIONS[loc] == nil then argerror(n, fname, "location expected", 3) end
    return loc
end

function M.date(year, month, day, hour, minute, sec, nsec, loc)
    local fname = "date"
    year, month, day = int_arg(year, 1, fname), int_arg(month, 2, fname), int_arg(day, 3, fname)
    hour, minute, sec = int_arg(hour, 4, fname), int_arg(minute, 5, fname), int_arg(sec, 6, fname)
    nsec = int_arg(nsec, 7, fname)
    loc = location_arg(loc, 8, fname)
    local s, n = host.date(year, month, day, hour, minute, sec, nsec, LOCATIONS[loc].z)
    if s == nil then error("time.date: " .. n, 2) end
    return new_time(s, n, loc)
end

function M.parse(layout, value, loc)
    if type(layout) == "string" and type(value) == "string" and not (utf8len(layout) and utf8len(value)) then
        return nil, invalid("time.parse: the layout and the value must be UTF-8 text")
    end
    layout, value = str_arg(layout, 1, "parse"), str_arg(value, 2, "parse")
    loc = location_arg(loc, 3, "parse")
    local s, n, zone = host.parse(layout, value, LOCATIONS[loc].z)
    if s == nil then return nil, invalid("time.parse: " .. n) end
    local found = loc
    if zone == 1 then found = UTC_LOC elseif zone ~= 0 then found = new_location(zone) end
    return new_time(s, n, found)
end

function M.parse_duration(value)
    local ns, err = to_ns(value)
    if ns == nil then return nil, invalid("time.parse_duration: " .. err) end
    return new_duration(ns)
end

function M.load_location(name)
    if type(name) == "string" and not utf8len(name) then
        return nil, errors._make("NOT_FOUND", "time.load_location: unknown time zone (the name is not UTF-8 text)", false)
    end
    name = str_arg(name, 1, "load_location")
    if name == "" then return nil, invalid("time.load_location: empty location name") end
    if name == "UTC" then return UTC_LOC end
    if name == "Local" then return LOCAL_LOC end
    local found = loaded[name]
    if found then return found end
    local zone, err = host.load_location(name)
    if zone == nil then return nil, errors._make("NOT_FOUND", "time.load_location: " .. err, false) end
    found = new_location(zone)
    loaded[name] = found
    return found
end

function M.fixed_zone(name, offset)
    return new_location(host.fixed_zone(str_arg(name, 1, "fixed_zone"), int_arg(offset, 2, "fixed_zone")))
end

-- Sleeping and timers ---------------------------------------------------------------------------
local function positive(d, what)
    local ns, err = to_ns(d)
    if ns == nil then return nil, invalid(what .. ": " .. err) end
    if ns <= 0 then return nil, invalid(what .. ": duration must be > 0") end
    return ns
end

function M.sleep(d)
    local ns, err = to_ns(d)
    if ns == nil then return nil, invalid("time.sleep: " .. err) end
    if ns > 0 then S.request({ kind = "sleep", seconds = ns / 1e9 }) end
    return true
end

function M.after(d)
    local ns, err = positive(d, "time.after")
    if ns == nil then return nil, err end
    local ch = channel.new(1)
    host.call_later(ns / 1e9, function()
        ch:post(unix_time(host.now_ns()))
        ch:close() -- fires once, then closes (Wippy)
    end)
    return ch
end

local Timer = { __name = "time.Timer" }
Timer.__index = Timer
function Timer:response() return self._ch end
function Timer:channel() return self._ch end
function Timer:stop()
    if self._handle == nil then return false end
    host.cancel(self._handle)
    self._handle = nil
    return true
end
local function arm(timer, ns)
    local ch = timer._ch
    timer._handle = host.call_later(ns / 1e9, function()
        timer._handle = nil
        ch:post(unix_time(host.now_ns()))
    end)
end
function Timer:reset(d)
    local ns, err = to_ns(d)
    if ns == nil then error("timer:reset: " .. err, 2) end
    if ns <= 0 then error("timer:reset: duration must be > 0", 2) end
    local was = self:stop()
    arm(self, ns)
    return was
end

function M.timer(d)
    local ns, err = positive(d, "time.timer")
    if ns == nil then return nil, err end
    local t = setmetatable({ _ch = channel.new(1) }, Timer)
    arm(t, ns)
    return t
end

local Ticker = { __name = "time.Ticker" }
Ticker.__index = Ticker
function Ticker:response() return self._ch end
function Ticker:channel() return self._ch end
function Ticker:stop()
    if self._handle ~= nil then
        host.cancel(self._handle)
        self._handle = nil
    end
    self._ch:close() -- as Wippy: stopping closes the channel; buffered ticks stay readable
    return true
end

function M.ticker(d)
    local ns, err = positive(d, "time.ticker")
    if ns == nil then return nil, err end
    local t = setmetatable({ _ch = channel.new(1) }, Ticker)
    local ch = t._ch
    local function tick()
        if #ch == 0 then ch:post(unix_time(host.now_ns())) end -- a slow reader misses ticks, as in Go
        t._handle = host.call_later(ns / 1e9, tick)
    end
    t._handle = host.call_later(ns / 1e9, tick)
    return t
end

return M
