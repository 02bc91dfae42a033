-- The `logger` module: structured logs, called with a colon.
--   logger:debug|info|warn|error(message, fields?)   fields: a table; string keys only
--   logger:with(fields) -> Logger                     a child adding these fields to every line
--   logger:named(name) -> Logger                      a child logging under "<parent>.<name>"
-- Every line carries pid, entry and location (<entry id>:<line> of the calling code).
-- Loaded with (host bridge, errors, getinfo, readonly).

local B, errors, getinfo, readonly = ...
local type, tostring, error, pairs = type, tostring, error, pairs

local LEVELS = { debug = 10, info = 20, warn = 30, error = 40 }

-- the calling code: level 1 is `where`, 2 the logger method, 3 its caller
local function where()
    local info = getinfo(3, "Sl")
    if info == nil then return nil, nil end
    local src = info.source
    if src and src:sub(1, 1) == "=" and src:find(":", 2, true) then return src:sub(2), info.currentline end
    return nil, nil
end

local function string_keys(fields, what)
    if fields == nil then return nil end
    if type(fields) ~= "table" then
        error(errors._make("INVALID", what .. ": fields must be a table, got " .. type(fields)), 3)
    end
    local out = {}
    for k, v in pairs(fields) do
        if type(k) == "string" then out[k] = v end
    end
    return out
end

local function colon(self, method)
    if type(self) ~= "table" then
        error(errors._make("INVALID", "logger." .. method .. ": call it with a colon, logger:" .. method .. "(...)"), 3)
    end
end

local new

new = function(name, context)
    local L = {}
    for method, level in pairs(LEVELS) do
        local what = "logger:" .. method
        L[method] = function(self, message, fields)
            colon(self, method)
            local t = type(message)
            if t == "number" then message = tostring(message) elseif t ~= "string" then
                error(errors._make("INVALID", what .. ": the message must be a string, got " .. t), 2)
            end
            local extra = string_keys(fields, what)
            local entry, line = where()
            B.emit(level, name, context, message, extra, entry, line)
        end
    end
    function L.with(self, fields)
        colon(self, "with")
        if type(fields) ~= "table" then
            error(errors._make("INVALID", "logger:with: fields must be a table, got " .. type(fields)), 2)
        end
        return new(name, B.merge(context, string_keys(fields, "logger:with")))
    end
    function L.named(self, child)
        colon(self, "named")
        if type(child) ~= "string" or child == "" then
            error(errors._make("INVALID", "logger:named: the name must be a non-empty string"), 2)
        end
        return new(name and (name .. "." .. child) or child, context)
    end
    return readonly(L, "logger")
end

return new(nil, nil)
