-- The `http` module: the request being handled and its response, inside a handler that an
-- http.endpoint calls (see lua_stdlib/_mod_http.py and services/_http_exchange.py).
--   http.request(opts?{timeout, max_body}) -> req, err     http.response() -> res, err
-- Request getters return the value (nil when absent); body/body_json/stream/parse_multipart
-- wait for the client without blocking other tasks. Response methods return only an error
-- (nil on success): they do not chain. Loaded with (host bridge, errors, scheduler).

local B, errors, S = ...
local setmetatable, type, tostring, pairs = setmetatable, type, tostring, pairs

local M = {}

M.METHOD = {
    GET = "GET", POST = "POST", PUT = "PUT", DELETE = "DELETE", PATCH = "PATCH", HEAD = "HEAD",
    OPTIONS = "OPTIONS", TRACE = "TRACE", CONNECT = "CONNECT",
}
M.STATUS = {
    CONTINUE = 100, SWITCHING_PROTOCOLS = 101,
    OK = 200, CREATED = 201, ACCEPTED = 202, NO_CONTENT = 204, PARTIAL_CONTENT = 206,
    MOVED_PERMANENTLY = 301, FOUND = 302, SEE_OTHER = 303, NOT_MODIFIED = 304,
    TEMPORARY_REDIRECT = 307, PERMANENT_REDIRECT = 308,
    BAD_REQUEST = 400, UNAUTHORIZED = 401, PAYMENT_REQUIRED = 402, FORBIDDEN = 403, NOT_FOUND = 404,
    METHOD_NOT_ALLOWED = 405, NOT_ACCEPTABLE = 406, REQUEST_TIMEOUT = 408, CONFLICT = 409, GONE = 410,
    PRECONDITION_FAILED = 412, PAYLOAD_TOO_LARGE = 413, UNSUPPORTED_MEDIA_TYPE = 415, UNPROCESSABLE = 422,
    UNPROCESSABLE_ENTITY = 422, TOO_MANY_REQUESTS = 429,
    INTERNAL_ERROR = 500, INTERNAL_SERVER_ERROR = 500, NOT_IMPLEMENTED = 501, BAD_GATEWAY = 502,
    SERVICE_UNAVAILABLE = 503, GATEWAY_TIMEOUT = 504, VERSION_NOT_SUPPORTED = 505,
}
M.CONTENT = {
    JSON = "application/json", FORM = "application/x-www-form-urlencoded", MULTIPART = "multipart/form-data",
    TEXT = "text/plain", STREAM = "application/octet-stream", HTML = "text/html", XML = "application/xml",
}
M.TRANSFER = { CHUNKED = "chunked", SSE = "sse" }
M.ERROR = {
    PARSE_FAILED = "PARSE_FAILED", INVALID_STATE = "INVALID_STATE", WRITE_FAILED = "WRITE_FAILED",
    STREAM_ERROR = "STREAM_ERROR",
}

-- the exchange of the handler call this code runs in (the server attaches it to the call's task;
-- coroutines the handler started find it on their parent)
local function exchange()
    local t = S.running
    while t ~= nil do
        local x = t.call_data
        if x ~= nil and type(x) ~= "table" then return x end  -- a table is a queue delivery
        t = t.parent
    end
    return nil
end

local function no_context(fn)
    return errors._make("INTERNAL", "http." .. fn .. ": no HTTP request context (call it from a handler " ..
        "that an http.endpoint runs)")
end

-- a string argument, or an INVALID error naming the method
local function text(v, what)
    if type(v) == "string" then return v, nil end
    if type(v) == "number" then return tostring(v), nil end
    return nil, errors._make("INVALID", what .. ": expected a string, got " .. type(v))
end

-- streams over a Python reader (request bodies) or a Lua string (multipart files) ---------------
local Stream = { __name = "http.stream", __metatable = false }
Stream.__index = Stream
function Stream:read(n)
    if self._closed then return nil, errors._make("INVALID", "stream is closed") end
    if n ~= nil and (type(n) ~= "number" or n < 0) then
        return nil, errors._make("INVALID", "stream:read: size must be a non-negative number")
    end
    if self._data ~= nil then
        local data, pos = self._data, self._pos
        if pos > #data then return nil, nil end
        local last = (n == nil or n == 0) and #data or pos + n - 1
        self._pos = last + 1
        return data:sub(pos, last), nil
    end
    local chunk, err = B.read(self._x, n or 0)
    if err then return nil, err end
    if chunk == nil then return nil, nil end
    self._pos = self._pos + #chunk
    return chunk, nil
end
function Stream:stat()
    return { size = self._size, position = self._pos - 1, readable = true, writable = false, seekable = false }, nil
end
function Stream:close() self._closed = true return true, nil end
function Stream:write() return nil, errors._make("INVALID", "stream is read-only") end
function Stream:seek() return nil, errors._make("INVALID", "stream is not seekable") end

local function string_stream(data)
    return setmetatable({ _data = data, _pos = 1, _size = #data }, Stream)
end

-- multipart files ------------------------------------------------------------------------------
local File = { __name = "http.multipart_file", __metatable = false }
File.__index = File
function File:name() return self._name, nil end
function File:size() return self._size, nil end
function File:header(name)
    if type(name) ~= "string" then return nil end
    return self._headers[name:lower()]
end
function File:stream()
    if self._data == nil then self._data = B.blob(self._x, self._blob) end
    return string_stream(self._data), nil
end

-- the request ------------------------------------------------------------------------------------
local Request = { __name = "http.request", __metatable = false }
Request.__index = Request

function Request:method() return self._i[1], nil end
function Request:path() return self._i[2], nil end
function Request:host() return self._i[3], nil end
function Request:remote_addr() return self._i[4], nil end
function Request:content_type() return self._i[5], nil end
function Request:content_length() return self._i[6], nil end
function Request:has_body() return self._i[7], nil end
function Request:header(name)
    local key, bad = text(name, "request:header")
    if bad then return nil, bad end
    return B.header(self._x, key), nil
end
function Request:headers() return B.headers(self._x), nil end
function Request:query(name)
    local key, bad = text(name, "request:query")
    if bad then return nil, bad end
    return B.query(self._x, key), nil
end
function Request:query_params() return B.query_params(self._x), nil end
function Request:param(name)
    local key, bad = text(name, "request:param")
    if bad then return nil, bad end
    return B.param(self._x, key), nil
end
function Request:params() return B.params(self._x), nil end
function Request:accepts(ct)
    local key, bad = text(ct, "request:accepts")
    if bad then return nil, bad end
    return B.accepts(self._x, key), nil
end
function Request:is_content_type(ct)
    local key, bad = text(ct, "request:is_content_type")
    if bad then return nil, bad end
    local have = self._i[5]
    return have ~= nil and have:sub(1, #key):lower() == key:lower(), nil
end
function Request:cookie(name)
    local key, bad = text(name, "request:cookie")
    if bad then return nil, bad end
    return B.cookie(self._x, key), nil
end
function Request:body() return B.body(self._x, self._max, self._timeout) end
function Request:body_json() return B.body_json(self._x, self._max, self._timeout) end
function Request:stream()
    if not self._i[7] then return nil, errors._make("INVALID", "request:stream: the request has no body") end
    local ok, err = B.open_stream(self._x, self._max)
    if not ok then return nil, err end
    return setmetatable({ _x = self._x, _pos = 1, _size = self._i[6] or -1 }, Stream), nil
end
function Request:parse_multipart(max_memory)
    if max_memory ~= nil and type(max_memory) ~= "number" then
        return nil, errors._make("INVALID", "request:parse_multipart: max_memory must be a number of bytes")
    end
    local form, err = B.multipart(self._x, max_memory, self._max)
    if form == nil then return nil, err end
    local files = {}
    for field, list in pairs(form.files) do
        local out = {}
        for i, f in ipairs(list) do
            out[i] = setmetatable({ _name = f.name, _size = f.size, _x = self._x, _blob = f.blob,
                                    _headers = f.headers }, File)
        end
        files[field] = out
    end
    return { values = form.values, files = files }, nil
end

function M.request(opts)
    local x = exchange()
    if x == nil then return nil, no_context("request") end
    local max, timeout
    if opts ~= nil then
        if type(opts) ~= "table" then return nil, errors._make("INVALID", "http.request: options must be a table") end
        if opts.max_body ~= nil and type(opts.max_body) ~= "number" then
            return nil, errors._make("INVALID", "http.request: max_body must be a number of bytes")
        end
        if opts.timeout ~= nil and type(opts.timeout) ~= "number" then
            return nil, errors._make("INVALID", "http.request: timeout must be a number of milliseconds")
        end
        max, timeout = opts.max_body, opts.timeout
    end
    return setmetatable({ _x = x, _i = B.info(x), _max = max, _timeout = timeout }, Request), nil
end

-- the response -----------------------------------------------------------------------------------
local Response = { __name = "http.response", __metatable = false }
Response.__index = Response

function Response:set_status(code)
    if type(code) ~= "number" then
        return errors._make("INVALID", "response:set_status: expected a status code, got " .. type(code))
    end
    return B.set_status(self._x, code)
end
function Response:set_header(name, value)
    local k, bad = text(name, "response:set_header")
    if bad then return bad end
    local v, bad2 = text(value, "response:set_header")
    if bad2 then return bad2 end
    return B.set_header(self._x, k, v)
end
function Response:set_content_type(ct)
    local v, bad = text(ct, "response:set_content_type")
    if bad then return bad end
    return B.set_header(self._x, "Content-Type", v)
end
function Response:write(data)
    if type(data) ~= "string" then
        if type(data) == "number" then data = tostring(data)
        else return errors._make("INVALID", "response:write: expected a string, got " .. type(data)) end
    end
    return B.write(self._x, data)
end
function Response:write_json(value) return B.write_json(self._x, value) end
function Response:flush() return B.flush(self._x) end
function Response:set_transfer(mode)
    if mode ~= "chunked" and mode ~= "sse" then
        return errors._make("INVALID", "response:set_transfer: mode must be http.TRANSFER.CHUNKED or SSE, got " ..
            tostring(mode))
    end
    return B.set_transfer(self._x, mode)
end
function Response:write_event(event)
    if type(event) ~= "table" then return errors._make("INVALID", "response:write_event: expected a table") end
    if type(event.name) ~= "string" or event.name == "" then
        return errors._make("INVALID", "response:write_event: the event needs a name")
    end
    if event.data == nil then return errors._make("INVALID", "response:write_event: the event needs data") end
    return B.write_event(self._x, event.name, event.data)
end
function Response:set_cookie(c)
    if type(c) ~= "table" or type(c.name) ~= "string" then
        return errors._make("INVALID", "response:set_cookie: expected a table with name and value")
    end
    return B.set_cookie(self._x, c)
end

function M.response()
    local x = exchange()
    if x == nil then return nil, no_context("response") end
    return setmetatable({ _x = x }, Response), nil
end

return M
