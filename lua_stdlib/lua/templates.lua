-- The `templates` module: Jet template sets from the registry.
--   templates.get(set_id) -> set, err        (permission template.get on the set id)
--   set:render(name, data?) -> string, err   (NOT_FOUND: no such template; INTERNAL: the render failed)
--   set:release() -> true                    (later renders fail; releasing twice is fine)
-- A set reads its templates from the registry at each render, so changes apply at once.
-- Loaded with (host bridge, errors, security lib).

local B, errors, sec = ...
local check = sec.check
local setmetatable, type = setmetatable, type

local state = setmetatable({}, { __mode = "k" }) -- set -> { id = set id, released = bool }

local Set = { __name = "template.Set", __metatable = false }
Set.__index = Set

function Set.__tostring(self)
    local s = state[self]
    return (s == nil or s.released) and "template.Set{released}" or "template.Set{}"
end

function Set:render(name, data)
    local s = state[self]
    if s == nil then return nil, errors._make("INVALID", "set:render: call it on a template set, with ':'") end
    if s.released then return nil, errors._make("INTERNAL", "template set is released") end
    if type(name) ~= "string" or name == "" then return nil, errors._make("INVALID", "template name is required") end
    if data ~= nil and type(data) ~= "table" then
        return nil, errors._make("INVALID", "set:render: data must be a table")
    end
    return B.render(s.id, name, data)
end

function Set:release()
    local s = state[self]
    if s ~= nil then s.released = true end
    return true
end

local M = {}

function M.get(id)
    if type(id) ~= "string" or id == "" then return nil, errors._make("INVALID", "resource id is required") end
    local denied = check("template.get", id)
    if denied then return nil, denied end
    local ok, err = B.exists(id)
    if not ok then return nil, err end
    local set = setmetatable({}, Set)
    state[set] = { id = id, released = false }
    return set, nil
end

return M
