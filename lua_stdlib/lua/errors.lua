-- Wippy's `errors` global: structured error objects with a kind, retryability, details and the
-- Lua stack where they were made.
--   errors.new("msg" | {message, kind, retryable, details}); errors.wrap(err, "context");
--   errors.is(err, kind); errors.call_stack(err) -> {thread, frames = {{source, line, name}}}
--   err:kind() :message() :retryable() :details() :stack() tostring(err)
-- Loaded with the raw `debug.getinfo` as argument; returns the module table.

local getinfo = ...
local setmetatable, getmetatable, type, tostring, error = setmetatable, getmetatable, type, tostring, error

local KINDS = {
    "UNKNOWN", "INVALID", "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "TIMEOUT", "CANCELED",
    "UNAVAILABLE", "INTERNAL", "CONFLICT", "RATE_LIMITED",
}

local Error = {}
Error.__index = Error
Error.__name = "error"

local function frames(level)
    local out = {}
    local i = level
    while #out < 32 do
        local info = getinfo(i, "Sln")
        if info == nil then break end
        if info.what ~= "C" then
            out[#out + 1] = { source = info.short_src, line = info.currentline, name = info.name }
        end
        i = i + 1
    end
    return out
end

local function make(message, kind, retryable, details, stack, cause)
    return setmetatable({
        _message = message, _kind = kind or "UNKNOWN", _retryable = retryable, _details = details,
        _frames = stack, _cause = cause,
    }, Error)
end

local function is_error(v) return getmetatable(v) == Error end

function Error:kind() return self._kind end
function Error:message() return self._message end
function Error:retryable() return self._retryable end
function Error:details() return self._details end
function Error:stack()
    local lines = {}
    for i, f in ipairs(self._frames or {}) do
        lines[i] = f.source .. ":" .. tostring(f.line) .. (f.name and (" in " .. f.name) or "")
    end
    return table.concat(lines, "\n")
end
function Error:__tostring() return self._message end
function Error.__eq(a, b) return rawequal(a, b) end
function Error.__concat(a, b) return tostring(a) .. tostring(b) end

local M = {}
for _, k in ipairs(KINDS) do M[k] = k end

function M.new(spec)
    if type(spec) == "string" then
        return make(spec, "UNKNOWN", nil, nil, frames(3))
    end
    if type(spec) ~= "table" then
        error("errors.new: expected a message or {message, kind, retryable, details}", 2)
    end
    local message = spec.message
    if message == nil then message = "" end
    return make(tostring(message), spec.kind or "UNKNOWN", spec.retryable, spec.details, frames(3))
end

function M.wrap(err, context)
    if err == nil then return nil end
    if is_error(err) then
        return make(tostring(context) .. ": " .. err._message, err._kind, err._retryable, err._details,
                    err._frames, err)
    end
    return make(tostring(context) .. ": " .. tostring(err), "UNKNOWN", nil, nil, frames(3))
end

function M.is(err, kind)
    if not is_error(err) then return false end
    return err._kind == kind
end

function M.call_stack(err)
    if not is_error(err) then return nil end
    return { thread = "main", frames = err._frames or {} }
end

--- For the host and other modules: make an error (kind, message, retryable, details, traceback).
function M._make(kind, message, retryable, details, stack_text)
    local e = make(message, kind, retryable, details, nil)
    e._traceback = stack_text
    return e
end
M._is = is_error
M._Error = Error

return M
