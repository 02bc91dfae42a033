-- The `fs` module: sandboxed directory volumes (the host side is _mod_fs.py and _fs_volume.py).
--   fs.get(id) -> vol, err             (permission fs.get on the volume id)
--   vol:readfile(p) / read_file -> data        vol:writefile(p, data | reader, mode "w"|"a"|"wx") -> true
--   vol:exists(p) -> bool   vol:isdir(p) -> bool   vol:stat(p) -> {name, size, mode, modified, is_dir, type}
--   vol:mkdir(p) vol:remove(p) vol:chdir(p) -> true     vol:pwd() -> "/..."
--   for e in vol:readdir(p) do ... end   (e = {name, type = "file" | "directory"})
--   vol:open(p, "r"|"w"|"wx"|"a") -> file: read(n = 4096) -> chunk | nil, NOT_FOUND("EOF"); write(s) -> true;
--       seek(whence, offset) -> position; stat(); sync(); close(); scanner("lines"|"words"|"bytes"|"runes")
-- Failures are values: nil (or false), err with kind INVALID, NOT_FOUND, ALREADY_EXISTS,
-- PERMISSION_DENIED (a path outside the volume, or the permission check) or INTERNAL.
-- Loaded with (host bridge, errors, security lib, stream lib).

local B, errors, sec, streams = ...
local make = errors._make
local type, tostring, setmetatable, tointeger = type, tostring, setmetatable, math.tointeger
local utf8len, yield = utf8.len, coroutine.yield

-- readfile and file_read answer data (maybe binary) at once, or a Pending (userdata) to wait for
local function settle(a, ...)
    if type(a) == "userdata" then return yield(a) end
    return a, ...
end
local function waits(fn) return function(...) return settle(fn(...)) end end
local readfile, file_read = waits(B.readfile), waits(B.file_read)

local function invalid(message) return make("INVALID", message, false) end

local volumes = setmetatable({}, { __mode = "k" })
local files = setmetatable({}, { __mode = "k" })

local function misuse(what, name)
    return invalid(what .. ":" .. name .. ": call it as a method, " .. what .. ":" .. name .. "(...)")
end

-- a path argument: the string, or nil and an INVALID error naming the method
local function path_of(p, name, allow_empty)
    if type(p) ~= "string" then
        return nil, invalid("vol:" .. name .. ": path must be a string, got " .. type(p))
    end
    if p == "" and not allow_empty then return nil, invalid("vol:" .. name .. ": path required") end
    if not utf8len(p) then return nil, invalid("vol:" .. name .. ": path must be text (UTF-8)") end
    return p, nil
end

-- files ----------------------------------------------------------------------------------------
local File = { __name = "fs.File", __metatable = false }
File.__index = File
File.__tostring = function(f) return f._closed and "fs.File{closed}" or "fs.File{}" end

local function new_file(h)
    local f = setmetatable({ _h = h, _closed = false }, File)
    files[f] = true
    return f
end

function File:read(size)
    if not files[self] then return nil, misuse("file", "read") end
    if size == nil then size = 4096 end
    local n = tointeger(size)
    if n == nil then
        return nil, invalid("file:read: size must be a whole number of bytes, got " .. tostring(size))
    end
    size = n
    if size <= 0 then return nil, invalid("file:read: size must be positive") end
    local chunk, err = file_read(self._h, size)
    if err ~= nil then return nil, err end
    if chunk == nil then return nil, make("NOT_FOUND", "EOF", false) end
    return chunk, nil
end

function File:write(data)
    if not files[self] then return false, misuse("file", "write") end
    if type(data) == "number" then data = tostring(data) end
    if type(data) ~= "string" then return false, invalid("file:write: expected a string, got " .. type(data)) end
    if data == "" then return false, invalid("file:write: data required") end
    return B.file_write(self._h, data)
end

function File:seek(whence, offset)
    if not files[self] then return nil, misuse("file", "seek") end
    if whence ~= "set" and whence ~= "cur" and whence ~= "end" then
        return nil, invalid("file:seek: invalid whence " .. tostring(whence) .. ": must be 'set', 'cur', or 'end'")
    end
    if offset == nil then offset = 0 end
    local n = tointeger(offset)
    if n == nil then
        return nil, invalid("file:seek: offset must be a whole number, got " .. tostring(offset))
    end
    offset = n
    return B.file_seek(self._h, whence, offset)
end

function File:stat()
    if not files[self] then return nil, misuse("file", "stat") end
    return B.file_stat(self._h)
end

function File:sync()
    if not files[self] then return false, misuse("file", "sync") end
    return B.file_sync(self._h)
end
File.flush = File.sync

function File:close()
    if not files[self] then return false, misuse("file", "close") end
    self._closed = true
    return B.file_close(self._h)
end

function File:scanner(split)
    if not files[self] then return nil, misuse("file", "scanner") end
    if self._closed then return nil, invalid("file:scanner: file is closed") end
    local h = self._h
    return streams.scanner(function() return file_read(h, 0) end, split, "file:scanner")
end

-- volumes --------------------------------------------------------------------------------------
local Volume = { __name = "fs.FS", __metatable = false }
Volume.__index = Volume
Volume.__tostring = function(v) return "fs.FS{cwd=/" .. v._cwd .. "}" end

-- vol:name(p): the bridge's answer for (volume, cwd, p); `fail` on a bad argument
local function simple(name, fail, allow_empty, call)
    call = call or B[name]
    return function(self, p)
        if not volumes[self] then return fail, misuse("vol", name) end
        local path, bad = path_of(p, name, allow_empty)
        if bad then return fail, bad end
        return call(self._v, self._cwd, path)
    end
end

Volume.stat = simple("stat", nil)
Volume.exists = simple("exists", false, true)
Volume.isdir = simple("isdir", false, true)
Volume.mkdir = simple("mkdir", false)
Volume.remove = simple("remove", false)
Volume.readfile = simple("readfile", nil, false, readfile)
Volume.read_file = Volume.readfile

function Volume:pwd()
    if not volumes[self] then return nil, misuse("vol", "pwd") end
    return "/" .. self._cwd, nil
end

function Volume:chdir(p)
    if not volumes[self] then return false, misuse("vol", "chdir") end
    local path, bad = path_of(p, "chdir")
    if bad then return false, bad end
    local cwd, err = B.chdir(self._v, self._cwd, path)
    if err ~= nil then return false, err end
    self._cwd = cwd
    return true, nil
end

function Volume:open(p, mode)
    if not volumes[self] then return nil, misuse("vol", "open") end
    local path, bad = path_of(p, "open")
    if bad then return nil, bad end
    if type(mode) ~= "string" then
        return nil, invalid("vol:open: mode must be 'r', 'w', 'wx' or 'a', got " .. tostring(mode))
    end
    local h, err = B.open(self._v, self._cwd, path, mode)
    if h == nil then return nil, err end
    return new_file(h), nil
end

function Volume:readdir(p)
    if not volumes[self] then return nil, misuse("vol", "readdir") end
    local path, bad = path_of(p, "readdir")
    if bad then return nil, bad end
    local list, err = B.readdir(self._v, self._cwd, path)
    if list == nil then return nil, err end
    local state = { list = list, i = 0 }
    return function(s)
        s.i = s.i + 1
        return s.list[s.i]
    end, state
end

local MODES = { w = true, a = true, wx = true }

-- copy a reader (anything with a read method: a stream, a file) into an open file
local function copy(reader, h)
    local ok, read = pcall(function() return reader.read end)
    if not ok or type(read) ~= "function" then
        return invalid("vol:writefile: data must be a string or a reader (an object with a read method), got " ..
            type(reader))
    end
    while true do
        local chunk, err = read(reader, 65536)
        if chunk == nil then
            -- the end: nil, nil (streams) or nil, NOT_FOUND "EOF" (fs files)
            if err == nil or (files[reader] and err:kind() == "NOT_FOUND") then return nil end
            return err
        end
        if chunk ~= "" then
            local _, werr = B.file_write(h, chunk)
            if werr ~= nil then return werr end
        end
    end
end

function Volume:writefile(p, data, mode)
    if not volumes[self] then return false, misuse("vol", "writefile") end
    local path, bad = path_of(p, "writefile")
    if bad then return false, bad end
    if data == nil then return false, invalid("vol:writefile: data argument required") end
    if mode == nil then mode = "w" end
    if not MODES[mode] then
        return false, invalid("vol:writefile: invalid mode " .. tostring(mode) .. "; must be 'w', 'wx' or 'a'")
    end
    if type(data) == "string" then return B.writefile(self._v, self._cwd, path, data, mode) end
    if type(data) ~= "table" and type(data) ~= "userdata" then
        return false, invalid("vol:writefile: data must be a string or a reader, got " .. type(data))
    end
    local h, err = B.open(self._v, self._cwd, path, mode)
    if h == nil then return false, err end
    local failed = copy(data, h)
    B.file_close(h)
    if failed ~= nil then return false, failed end
    return true, nil
end
Volume.write_file = Volume.writefile

-- the module -------------------------------------------------------------------------------------
local M = {
    type = { FILE = "file", DIR = "directory" },
    seek = { SET = "set", CUR = "cur", END = "end" },
}

function M.get(id)
    if type(id) ~= "string" then return nil, invalid("fs.get: expected a filesystem id, got " .. type(id)) end
    if id == "" then return nil, invalid("fs.get: filesystem name required") end
    if not utf8len(id) then return nil, invalid("fs.get: the id must be text (UTF-8)") end
    local denied = sec.check("fs.get", id)
    if denied then return nil, denied end
    local v, err = B.get(id)
    if v == nil then return nil, err end
    local vol = setmetatable({ _v = v, _cwd = "" }, Volume)
    volumes[vol] = true
    return vol, nil
end

return M
