-- The `payload` global: a value wrapped with its format, as messages and function results carry it.
--   payload.new(v) -> p; p:data() -> v, nil; p:get_format(); p:transcode(format) -> p2, err
-- Values stay Lua values here ("lua/any"); JSON and other encodings are done by the host modules
-- that cross a process boundary.

local readonly = ...
local setmetatable, getmetatable, type = setmetatable, getmetatable, type

local FORMAT = {
    JSON = "json/plain", YAML = "yaml/plain", STRING = "text/plain", BYTES = "application/octet-stream",
    MSGPACK = "application/msgpack", LUA = "lua/any", GOLANG = "golang/any",
}

local Payload = {}
Payload.__index = Payload
Payload.__name = "payload"

local function new(value, format)
    return setmetatable({ _value = value, _format = format or FORMAT.LUA }, Payload)
end

function Payload:data() return self._value, nil end
function Payload:unmarshal() return self._value, nil end
function Payload:get_format() return self._format end
function Payload:transcode(format)
    if format == FORMAT.LUA or format == self._format then return new(self._value, format), nil end
    if format == FORMAT.STRING then return new(tostring(self._value), format), nil end
    return nil, "payload:transcode: format " .. tostring(format) .. " is not supported yet"
end
function Payload:__tostring() return "payload(" .. self._format .. ")" end

local M = {
    new = new,
    format = readonly(FORMAT, "payload.format"),
    is = function(v) return getmetatable(v) == Payload end,
}
return readonly(M, "payload")
