-- The `events` module: the node's event bus (see lua_stdlib/_mod_events.py, services/_events.py).
--   events.send(system, kind, path, data?) -> true | nil, err      (events.send on the system)
--   events.subscribe(system_pattern, kind_pattern?, {from = "start" | seq | iso_time}?) -> sub | nil, err
--                                                  (events.subscribe on it; from: ours, default now)
--   sub:channel() -> a channel of {system, kind, path, data}; sub:close() -> true
-- A subscription's events reach its channel through a reader task, a child of the subscribing
-- process's task: it ends with the process (or sub:close()), and the channel closes then.
-- Loaded with (host bridge, scheduler, channel module, errors, security lib).

local B, S, channel, errors, sec = ...
local check = sec.check
local setmetatable, type, tostring = setmetatable, type, tostring

local function text(v, what, fn)
    if type(v) ~= "string" or v == "" then
        return errors._make("INVALID", fn .. ": " .. what .. " must be a non-empty string, got " ..
            (type(v) == "string" and "an empty string" or type(v)))
    end
    return nil
end

local M = {}

function M.send(system, kind, path, data)
    local bad = text(system, "system", "events.send") or text(kind, "kind", "events.send")
        or text(path, "path", "events.send")
    if bad then return nil, bad end
    local denied = check("events.send", system)
    if denied then return nil, denied end
    return B.send(system, kind, path, data)
end

local Sub = { __name = "events.subscription", __metatable = false }
Sub.__index = Sub
function Sub:channel() return self._ch end
function Sub:close()
    if not self._closed then
        self._closed = true
        B.close(self._h)
    end
    return true
end

local function reader(h, ch)
    while true do
        local batch = B.next(h)
        if batch == nil then break end
        for i = 1, #batch do
            if not pcall(ch.send, ch, batch[i]) then B.close(h) return end -- the channel was closed
        end
    end
    ch:close()
end

function M.subscribe(system, kind, opts)
    local bad = text(system, "system pattern", "events.subscribe")
    if bad then return nil, bad end
    if kind ~= nil then
        bad = text(kind, "kind pattern", "events.subscribe")
        if bad then return nil, bad end
    end
    if opts ~= nil and type(opts) ~= "table" then
        return nil, errors._make("INVALID", "events.subscribe: options must be a table, got " .. type(opts))
    end
    local denied = check("events.subscribe", system)
    if denied then return nil, denied end
    local h, err
    if opts ~= nil and opts.from ~= nil then -- ours: start at a past position ("start", a seq, an ISO time)
        h, err = B.subscribe_from(system, kind, opts.from)
    else
        h, err = B.subscribe(system, kind)
    end
    if h == nil then return nil, err end
    local ch = channel.new(64)
    local task = S.running
    local proc = task and task.proc
    S.spawn(reader, nil, (proc and proc.task) or task, h, ch)
    return setmetatable({ _h = h, _ch = ch, _closed = false }, Sub), nil
end

return M
