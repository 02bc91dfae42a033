-- Streams and scanners for modules that hand Lua a source of bytes (exec's process output; fs files
-- use the scanner). The Lua shape is Wippy's stream: read(n) -> chunk | nil, nil at the end;
-- write/seek/flush/stat/close; scanner(split) -> scan() text() err().
--   streams.new(name, ops, h) -> stream   ops (host functions, each given h):
--       read(h, n) -> chunk | nil (the end) | nil, err    (n = 0: what is there, up to a chunk)
--       close(h) -> true; stat(h) -> {size, position, readable, writable, seekable}
--       write(h, data), seek(h, whence, offset), flush(h): optional (absent: "not writable"/...)
--   streams.scanner(read, split, label) -> scanner | nil, err   read() as ops.read without h
-- Scanners split as Go's bufio.Scanner: lines (without "\n" or "\r\n"), words (runs of non-space),
-- bytes, runes (invalid UTF-8 becomes U+FFFD); a token longer than 64 KiB is an error.
-- Loaded with (errors).

local errors = ...
local make = errors._make
local type, tostring, setmetatable, tointeger = type, tostring, setmetatable, math.tointeger
local find, sub, byte = string.find, string.sub, string.byte
local utf8len = utf8.len

local MAX_TOKEN = 64 * 1024
local REPLACEMENT = "\239\191\189"

local function strip_cr(line)
    if sub(line, -1) == "\r" then return sub(line, 1, -2) end
    return line
end

-- split(buf, pos, eof) -> next position, token (nil: more data needed)
local splitters = {
    lines = function(buf, pos, eof)
        local nl = find(buf, "\n", pos, true)
        if nl then return nl + 1, strip_cr(sub(buf, pos, nl - 1)) end
        if eof and pos <= #buf then return #buf + 1, strip_cr(sub(buf, pos)) end
        return pos, nil
    end,
    words = function(buf, pos, eof)
        local s = find(buf, "%S", pos)
        if not s then return #buf + 1, nil end
        local e = find(buf, "%s", s)
        if e then return e + 1, sub(buf, s, e - 1) end
        if eof then return #buf + 1, sub(buf, s) end
        return s, nil
    end,
    bytes = function(buf, pos)
        if pos <= #buf then return pos + 1, sub(buf, pos, pos) end
        return pos, nil
    end,
    runes = function(buf, pos, eof)
        if pos > #buf then return pos, nil end
        local b = byte(buf, pos)
        local n = b < 0x80 and 1 or (b >= 0xC2 and b <= 0xDF) and 2 or (b >= 0xE0 and b <= 0xEF) and 3
            or (b >= 0xF0 and b <= 0xF4) and 4 or 0
        if n == 0 then return pos + 1, REPLACEMENT end
        if pos + n - 1 > #buf then
            if eof then return pos + 1, REPLACEMENT end
            return pos, nil
        end
        local piece = sub(buf, pos, pos + n - 1)
        if utf8len(piece) == 1 then return pos + n, piece end
        return pos + 1, REPLACEMENT
    end,
}

local Scanner = { __name = "scanner", __metatable = false }
Scanner.__index = Scanner
local scanners = setmetatable({}, { __mode = "k" })

local L = {}

function L.scanner(read, split, label)
    local fn = splitters[split == nil and "lines" or split]
    if fn == nil then
        return nil, make("INVALID", label .. ": split must be lines, words, bytes or runes, got " .. tostring(split),
            false)
    end
    local s = setmetatable({ _read = read, _split = fn, _buf = "", _pos = 1, _eof = false, _text = "" }, Scanner)
    scanners[s] = true
    return s, nil
end

--- Advance to the next token: true, nil; false, nil at the end; false, err on a failure.
function Scanner:scan()
    if not scanners[self] then return false, make("INVALID", "scanner:scan: call it as a method", false) end
    while true do
        local pos, token = self._split(self._buf, self._pos, self._eof)
        self._pos = pos
        if token ~= nil then
            self._text = token
            return true, nil
        end
        self._text = ""
        if self._eof or self._err then return false, nil end
        if #self._buf - pos + 1 > MAX_TOKEN then
            self._err = "token too long"
            return false, make("INTERNAL", "scanner: token too long (more than " .. MAX_TOKEN .. " bytes)", false)
        end
        local chunk, err = self._read()
        if err ~= nil then
            self._err = tostring(err)
            return false, err
        end
        if chunk == nil then self._eof = true else self._buf, self._pos = sub(self._buf, pos) .. chunk, 1 end
    end
end

function Scanner:text() return self._text end
function Scanner:err() return self._err end

-- streams --------------------------------------------------------------------------------------
local Stream = { __metatable = false }
Stream.__index = Stream
Stream.__tostring = function(s) return s._name end
local streams = setmetatable({}, { __mode = "k" })

local function misuse(name)
    return make("INVALID", "stream:" .. name .. ": call it as a method, stream:" .. name .. "(...)", false)
end

local function unsupported(s, what)
    return make("INTERNAL", s._name .. ": stream not " .. what, false)
end

--- Up to `size` bytes (0 or nil: what is there); nil, nil at the end.
function Stream:read(size)
    if not streams[self] then return nil, misuse("read") end
    local n = size == nil and 0 or type(size) == "number" and tointeger(size) or nil  -- "5" is refused
    if n == nil or n < 0 then
        return nil, make("INVALID", "stream:read: size must be a whole number of bytes, got " .. tostring(size), false)
    end
    return self._ops.read(self._h, n)
end

function Stream:write(data)
    if not streams[self] then return nil, misuse("write") end
    local write = self._ops.write
    if write == nil then return 0, unsupported(self, "writable") end
    if type(data) ~= "string" then
        return 0, make("INVALID", "stream:write: expected a string, got " .. type(data), false)
    end
    return write(self._h, data)
end

function Stream:seek(whence, offset)
    if not streams[self] then return nil, misuse("seek") end
    local seek = self._ops.seek
    if seek == nil then return -1, unsupported(self, "seekable") end
    return seek(self._h, whence, offset)
end

function Stream:flush()
    if not streams[self] then return nil, misuse("flush") end
    local flush = self._ops.flush
    if flush == nil then return false, unsupported(self, "writable") end
    return flush(self._h)
end

function Stream:stat()
    if not streams[self] then return nil, misuse("stat") end
    return self._ops.stat(self._h)
end

function Stream:close()
    if not streams[self] then return false, misuse("close") end
    return self._ops.close(self._h)
end

function Stream:scanner(split)
    if not streams[self] then return nil, misuse("scanner") end
    local ops, h = self._ops, self._h
    return L.scanner(function() return ops.read(h, 0) end, split, "stream:scanner")
end

function L.new(name, ops, h)
    local s = setmetatable({ _name = name, _ops = ops, _h = h }, Stream)
    streams[s] = true
    return s
end

return L
