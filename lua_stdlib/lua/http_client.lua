-- The `http_client` module: outgoing HTTP requests (the host side is _mod_http_client.py).
--   get/post/put/patch/delete/head(url, opts?) -> resp | nil, err     request(method, url, opts?)
--   request_batch({{method, url, opts?}, ...}) -> responses, errors | nil  (nil, err: a bad or denied item)
--   encode_uri(s) -> string                       decode_uri(s) -> string | nil, err
-- resp: status_code, url (after redirects), body, body_size, headers, cookies; with opts.stream = true,
-- stream (read/close/stat/scanner) instead of body, and body_size -1.
--
-- Permission checks run here, in the calling task (they read its actor and scope), for every hop (the
-- URL and each redirect): http_client.unix_socket on the socket path, http_client.insecure_tls on the
-- URL, http_client.request on the URL, http_client.private_ip on each private address of the host.
-- A host name is looked up only when a check could deny (an actor and a scope, or strict mode); the
-- addresses approved are the ones connected to.
-- Loaded with (host bridge, errors, security lib, stream lib).

local B, errors, sec, streams = ...
local check, active = sec.check, sec.active
local make = errors._make
local type, tostring, tonumber, ipairs, pairs, pcall = type, tostring, tonumber, ipairs, pairs, pcall
local find, sub, gsub, format, byte, char = string.find, string.sub, string.gsub, string.format, string.byte, string.char
local concat, utf8len = table.concat, utf8.len

local function invalid(label, message) return make("INVALID", label .. ": " .. message, false) end

local function text_arg(v, label, what)
    if type(v) ~= "string" then return invalid(label, what .. " must be a string, got " .. type(v)) end
    if not utf8len(v) then return invalid(label, what .. " must be text (UTF-8), not binary data") end
    if v == "" then return invalid(label, what .. " is empty") end
    return nil
end

local function shallow(t)
    local out = {}
    for k, v in pairs(t) do out[k] = v end
    return out
end

-- requests -----------------------------------------------------------------------------------
-- a streamed body is a read-only stream of lua/stream.lua
local BODY = { read = B.stream_read, close = B.stream_close, stat = B.stream_stat }

local function response(r)
    if r.stream ~= nil then r.stream = streams.new("http_client.stream", BODY, r.stream) end
    return r
end

-- a file's reader (anything with a read method, a stream) read to its end
local function drain(reader, label)
    local ok, read = pcall(function() return reader.read end)
    if not ok or type(read) ~= "function" then
        return nil, invalid(label, "expected an object with a read method (a stream), got " .. type(reader))
    end
    local parts = {}
    while true do
        local chunk, err = read(reader, 65536)
        if err ~= nil then return nil, err end
        if chunk == nil then return concat(parts), nil end
        parts[#parts + 1] = chunk
    end
end

-- opts with every files[i].reader read into files[i].content (the caller's tables stay as they are)
local function with_readers(label, opts)
    if type(opts) ~= "table" or type(opts.files) ~= "table" then return opts, nil end
    local files
    for i, f in ipairs(opts.files) do
        if type(f) == "table" and f.content == nil and f.reader ~= nil then
            local content, err = drain(f.reader, label .. ": opts.files[" .. i .. "].reader")
            if content == nil then return nil, err end
            files = files or shallow(opts.files)
            local copy = shallow(f)
            copy.reader, copy.content = nil, content
            files[i] = copy
        end
    end
    if files == nil then return opts, nil end
    local copy = shallow(opts)
    copy.files = files
    return copy, nil
end

-- the host's request for these arguments and what the checks need: req, info | nil, err
local function start(label, method, url, opts, batch)
    local bad = text_arg(method, label, "method") or text_arg(url, label, "url")
    if bad then return nil, bad end
    if opts ~= nil and type(opts) ~= "table" then
        return nil, invalid(label, "opts must be a table, got " .. type(opts))
    end
    local o, err = with_readers(label, opts)
    if err ~= nil then return nil, err end
    return B.prepare(label, method, url, o, batch)
end

-- the permission checks for one hop to `url`: nil, or the denial
local function admit(req, url, info)
    local denied
    if info.unix_socket ~= nil then
        denied = check("http_client.unix_socket", info.unix_socket)
        if denied then return denied end
    end
    if info.insecure then
        denied = check("http_client.insecure_tls", url)
        if denied then return denied end
    end
    denied = check("http_client.request", url)
    if denied then return denied end
    if info.unix_socket == nil and active() then
        local private, err = B.resolve(req)
        if private == nil then return err end
        for i = 1, #private do
            denied = check("http_client.private_ip", private[i])
            if denied then return denied end
        end
    end
    return nil
end

local function perform(label, method, url, opts)
    local req, info = start(label, method, url, opts, false)
    if req == nil then return nil, info end
    local hop = url
    while true do
        local denied = admit(req, hop, info)
        if denied then return nil, denied end
        local r, err = B.send(req)
        if r == nil then return nil, err end
        if r.redirect == nil then return response(r), nil end
        hop = r.redirect
    end
end

local M = {}

for _, method in ipairs({ "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD" }) do
    local label = "http_client." .. method:lower()
    M[method:lower()] = function(url, opts) return perform(label, method, url, opts) end
end

function M.request(method, url, opts)
    return perform("http_client.request", method, url, opts)
end

function M.request_batch(requests)
    local label = "http_client.request_batch"
    if type(requests) ~= "table" then
        return nil, invalid(label, "requests must be a list of {method, url, opts?}, got " .. type(requests))
    end
    local n = #requests
    if n == 0 then return nil, invalid(label, "requests table cannot be empty") end
    local reqs, infos, hops, todo = {}, {}, {}, {}
    for i = 1, n do
        local item, where = requests[i], label .. ": requests[" .. i .. "]"
        if type(item) ~= "table" then
            return nil, invalid(where, "each request must be a table {method, url, opts?}, got " .. type(item))
        end
        local req, info = start(where, item[1], item[2], item[3], true)
        if req == nil then return nil, info end
        reqs[i], infos[i], hops[i], todo[i] = req, info, item[2], i
    end
    local responses, errs, failed, first = {}, {}, false, true
    while #todo > 0 do
        local batch, index = {}, {}
        for _, i in ipairs(todo) do
            local denied = admit(reqs[i], hops[i], infos[i])
            if denied and first then return nil, denied end -- as Wippy: a denied request fails the batch
            if denied then
                errs[i], failed = denied, true
            else
                batch[#batch + 1], index[#index + 1] = reqs[i], i
            end
        end
        first, todo = false, {}
        if #batch > 0 then
            local results, err = B.send_all(batch)
            if results == nil then return nil, err end
            for k, i in ipairs(index) do
                local r = results[k]
                if r.error ~= nil then
                    errs[i], failed = make(r.error.kind, r.error.message, r.error.retryable), true
                elseif r.redirect ~= nil then
                    hops[i], todo[#todo + 1] = r.redirect, i
                else
                    responses[i] = r
                end
            end
        end
    end
    if failed then return responses, errs end
    return responses, nil
end

-- URL encoding (Go's url.QueryEscape / QueryUnescape) -------------------------------------------
local function string_arg(s, label)
    if type(s) == "number" then return tostring(s), nil end
    if type(s) ~= "string" then return nil, invalid(label, "expected a string, got " .. type(s)) end
    return s, nil
end

local function escape(c) return format("%%%02X", byte(c)) end
local function unescape(h) return char(tonumber(h, 16)) end

function M.encode_uri(s)
    local str, err = string_arg(s, "http_client.encode_uri")
    if str == nil then return nil, err end
    return (gsub(gsub(str, "[^A-Za-z0-9%-_%.~ ]", escape), " ", "+"))
end

function M.decode_uri(s)
    local str, err = string_arg(s, "http_client.decode_uri")
    if str == nil then return nil, err end
    local at = find(str, "%", 1, true)
    while at do
        if not find(sub(str, at + 1, at + 2), "^%x%x$") then
            return nil, invalid("http_client.decode_uri", format("invalid URL escape %q", sub(str, at, at + 2)))
        end
        at = find(str, "%", at + 3, true)
    end
    return (gsub(gsub(str, "%+", " "), "%%(%x%x)", unescape)), nil
end

return M
