-- The `websocket` module: a WebSocket client (the API and its errors: _mod_websocket.py).
-- This side checks arguments and permissions, owns the client objects, and runs each connection's
-- reader task: it takes messages from the host (B.read) and sends them on the client's channel,
-- waiting while the channel is full, so a slow consumer slows the socket down instead of losing
-- messages. The reader is a child of the connecting process's main task: when the process ends
-- the reader is killed, and its to-be-closed guard closes the channel and the connection.
-- Loaded with (host bridge, scheduler, channel module, errors, security lib, readonly).

local B, S, channel, errors, sec, readonly = ...
local type, tostring, pairs, ipairs, setmetatable, pcall, error, next =
    type, tostring, pairs, ipairs, setmetatable, pcall, error, next
local floor = math.floor
local fmt, find, lower, sub = string.format, string.find, string.lower, string.sub
local utf8len = utf8.len
local check = sec.check

local TEXT, BINARY = 1, 2
local COMPRESSION = { DISABLED = 0, CONTEXT_TAKEOVER = 1, NO_CONTEXT = 2 }
local COMPRESSION_NAMES = { disabled = 0, context_takeover = 1, no_context_takeover = 2 }
local CLOSE_CODES = {
    NORMAL = 1000, GOING_AWAY = 1001, PROTOCOL_ERROR = 1002, UNSUPPORTED_DATA = 1003, RESERVED = 1004,
    NO_STATUS = 1005, ABNORMAL_CLOSURE = 1006, INVALID_PAYLOAD = 1007, POLICY_VIOLATION = 1008,
    MESSAGE_TOO_BIG = 1009, MANDATORY_EXTENSION = 1010, INTERNAL_ERROR = 1011, SERVICE_RESTART = 1012,
    TRY_AGAIN_LATER = 1013, BAD_GATEWAY = 1014, TLS_HANDSHAKE = 1015,
}
local MAX_REASON = 123 -- a close frame's payload is at most 125 bytes, 2 of them the code
local MAX_MS = 9223372036854 -- Go's longest duration (2^63 - 1 ns), in milliseconds
local TOKEN = "^[%w!#$%%&'*+%-.^_`|~]+$" -- an HTTP token: header names, subprotocols

local function invalid(message) return errors._make("INVALID", message, false) end

-- a value as an error message shows it
local function describe(v)
    local t = type(v)
    if t == "string" then
        if not utf8len(v) then return "a binary (non-UTF-8) string" end
        if #v > 60 then v = sub(v, 1, 57) .. "..." end
        return fmt("%q", v)
    end
    if t == "number" then return tostring(v) end
    return t
end

local function is_text(v) return type(v) == "string" and utf8len(v) ~= nil end

-- options --------------------------------------------------------------------------------------
local function bad_option(name, want, got)
    return invalid(fmt("websocket.connect: options.%s must be %s, got %s", name, want, describe(got)))
end

-- milliseconds or a Go duration string, as seconds (0: none)
local function duration(opts, name)
    local v = opts[name]
    if v == nil then return 0 end
    if type(v) == "number" then
        if v ~= v or v < 0 or v > MAX_MS then
            return nil, bad_option(name, "a number of milliseconds from 0 to " .. MAX_MS, v)
        end
        return v / 1000
    end
    if is_text(v) then
        local ns, msg = B.duration(v)
        if ns == nil then return nil, invalid(fmt("websocket.connect: options.%s: %s", name, msg)) end
        if ns < 0 then return nil, bad_option(name, "a duration of 0 or more", v) end
        return ns / 1e9
    end
    return nil, bad_option(name, 'milliseconds (a number) or a Go duration string such as "5s"', v)
end

local function integer(opts, name, lo, hi, default)
    local v = opts[name]
    if v == nil then return default end
    if type(v) ~= "number" or v ~= floor(v) or v < lo or v > hi then
        return nil, bad_option(name, fmt("an integer from %d to %d", lo, hi), v)
    end
    return floor(v)
end

local function headers_of(v)
    if v == nil then return nil end
    if type(v) ~= "table" then return nil, bad_option("headers", "a table of header names to values", v) end
    local out = {}
    for k, x in pairs(v) do
        if not is_text(k) or not find(k, TOKEN) then
            return nil, invalid("websocket.connect: options.headers: " .. describe(k) .. " is not a header name")
        end
        if type(x) == "number" then x = tostring(x) end
        if not is_text(x) or find(x, "[\r\n%z]") then
            return nil, bad_option(fmt("headers[%q]", k), "a string on one line", x)
        end
        out[k] = x
    end
    return next(out) and out or nil
end

local function protocols_of(v)
    if v == nil then return nil end
    if type(v) ~= "table" then return nil, bad_option("protocols", "a list of subprotocol names", v) end
    local out = {}
    for i, p in ipairs(v) do
        if not is_text(p) or not find(p, TOKEN) then
            return nil, bad_option(fmt("protocols[%d]", i), "a subprotocol name", p)
        end
        out[i] = p
    end
    return out[1] and out or nil
end

local function compression_of(v)
    if v == nil then return 0 end
    if type(v) == "number" and (v == 0 or v == 1 or v == 2) then return floor(v) end
    if is_text(v) and COMPRESSION_NAMES[lower(v)] then return COMPRESSION_NAMES[lower(v)] end
    return nil, bad_option("compression", 'websocket.COMPRESSION.* (0, 1, 2) or "disabled", "context_takeover" '
        .. 'or "no_context_takeover"', v)
end

-- the options as the host takes them, or nil, INVALID error
local function spec_of(opts)
    local spec, err = {}, nil
    spec.headers, err = headers_of(opts.headers); if err then return nil, err end
    spec.protocols, err = protocols_of(opts.protocols); if err then return nil, err end
    spec.dial, err = duration(opts, "dial_timeout"); if err then return nil, err end
    spec.read, err = duration(opts, "read_timeout"); if err then return nil, err end
    spec.write, err = duration(opts, "write_timeout"); if err then return nil, err end
    spec.compression, err = compression_of(opts.compression); if err then return nil, err end
    local _, terr = integer(opts, "compression_threshold", 0, 100 * 1024 * 1024, 0); if terr then return nil, terr end
    spec.read_limit, err = integer(opts, "read_limit", 0, 128 * 1024 * 1024, 0); if err then return nil, err end
    spec.capacity, err = integer(opts, "channel_capacity", 1, 10000, 32); if err then return nil, err end
    return spec, nil
end

local function check_url(url)
    if type(url) ~= "string" then return invalid("websocket.connect: url must be a string, got " .. type(url)) end
    if not utf8len(url) then return invalid("websocket.connect: url must be text, got a binary string") end
    local scheme, rest = url:match("^(%a[%w+.%-]*)://(.*)$")
    scheme = scheme and lower(scheme)
    if (scheme ~= "ws" and scheme ~= "wss") or not find(rest, "^[^/?#]") then
        return invalid("websocket.connect: url must be a ws:// or wss:// URL with a host, got " .. describe(url))
    end
    return nil
end

-- clients ----------------------------------------------------------------------------------------
local states = setmetatable({}, { __mode = "k" }) -- client -> {conn, ch, closed}

local Client = {}
local client_mt = {
    __index = Client,
    __newindex = function() error("websocket client objects are read-only", 2) end,
    __metatable = false,
    __name = "websocket.Client",
    __tostring = function() return "websocket.Client" end,
}

local function state_of(self, method)
    local st = states[self]
    if st == nil then error(fmt("client:%s: call it on a websocket client, as client:%s(...)", method, method), 3) end
    return st
end

-- The reader task: messages from the host onto the channel until the connection ends, the channel
-- is closed, or the task is killed with its process; then the channel and the connection close.
local function read_loop(conn, ch)
    local why = "owner"
    local _ <close> = setmetatable({}, { __close = function()
        ch:close()
        B.release(conn, why)
    end })
    while true do
        local kind, data = B.read(conn)
        if kind == nil then why = "end"; return end
        if not pcall(ch.send, ch, { type = kind, data = data }) then why = "channel"; return end
    end
end

function Client:send(data, kind)
    local st = state_of(self, "send")
    local td = type(data)
    if td == "number" then
        data = tostring(data)
    elseif td ~= "string" then
        return nil, invalid("client:send: data must be a string, got " .. td)
    end
    local binary
    if kind == nil or kind == TEXT or kind == "text" then
        binary = false
    elseif kind == BINARY or kind == "binary" then
        binary = true
    else
        return nil, invalid("client:send: the message type must be websocket.TEXT (1) or websocket.BINARY (2), got "
            .. describe(kind))
    end
    if not binary and not utf8len(data) then
        return nil, invalid("client:send: a text message must be UTF-8 text; send other bytes with websocket.BINARY")
    end
    return B.send(st.conn, data, binary)
end

function Client:ping()
    return B.ping(state_of(self, "ping").conn)
end

function Client:channel()
    return state_of(self, "channel").ch
end

function Client:receive()
    return state_of(self, "receive").ch
end

-- close codes an endpoint may put in a close frame (RFC 6455 7.4)
local function sendable(code)
    if type(code) ~= "number" or code ~= floor(code) then return false end
    return (code >= 1000 and code <= 1003) or (code >= 1007 and code <= 1014) or (code >= 3000 and code <= 4999)
end

function Client:close(code, reason)
    local st = state_of(self, "close")
    if code == nil then
        code = CLOSE_CODES.NORMAL
    elseif not sendable(code) then
        return nil, invalid("client:close: code must be a close code that may be sent (1000-1003, 1007-1014 or "
            .. "3000-4999), got " .. describe(code))
    end
    if reason == nil then
        reason = ""
    elseif not is_text(reason) or #reason > MAX_REASON then
        return nil, invalid(fmt("client:close: reason must be UTF-8 text of at most %d bytes, got %s", MAX_REASON,
            type(reason) == "string" and (#reason .. " bytes") or describe(reason)))
    end
    if st.closed then return true end
    st.closed = true
    local ok, err = B.close(st.conn, floor(code), reason)
    st.ch:close()
    if not ok then return nil, err end
    return true
end

-- the module -----------------------------------------------------------------------------------
local M = {
    TEXT = TEXT, BINARY = BINARY,
    TYPE_TEXT = "text", TYPE_BINARY = "binary", TYPE_PING = "ping", TYPE_PONG = "pong", TYPE_CLOSE = "close",
    COMPRESSION = readonly(COMPRESSION, "websocket.COMPRESSION"),
    CLOSE_CODES = readonly(CLOSE_CODES, "websocket.CLOSE_CODES"),
}

function M.connect(url, options)
    local bad = check_url(url)
    if bad then return nil, bad end
    if options ~= nil and type(options) ~= "table" then
        return nil, invalid("websocket.connect: options must be a table, got " .. type(options))
    end
    local spec, err = spec_of(options or {})
    if spec == nil then return nil, err end
    local denied = check("websocket.connect", "") or check("websocket.connect.url", url)
    if denied then return nil, denied end
    local conn, cerr = B.connect(url, spec)
    if conn == nil then return nil, cerr end
    local ch = channel.new(spec.capacity)
    local task = S.running
    local proc = task and task.proc
    S.spawn(read_loop, nil, proc and proc.task or nil, conn, ch)
    local client = setmetatable({}, client_mt)
    states[client] = { conn = conn, ch = ch, closed = false }
    return client, nil
end

return M
