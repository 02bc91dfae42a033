-- wippy.views:component_registry, native: the app's view components (web components).
--
-- A component is any entry with meta.type "view.component", served from meta.url (or
-- meta.public_url) and known in the page by meta.tag_name. Fields the YAML omits stay nil except
-- the flags (auto_register, secure, announced), which default to false as in Wippy. Answers are
-- Wippy's: value, or nil and an error string.
local registry = require("registry")
local security = require("security")
local page_registry = require("page_registry")

local components = {}

local function component_of(entry)
    local meta = entry.meta
    return {
        id = entry.id,
        name = meta.name,
        title = meta.title,
        description = meta.description,
        tag_name = meta.tag_name,
        base_path = meta.base_path,
        entry_point = meta.entry_point,
        auto_register = meta.auto_register or false,
        secure = meta.secure or false,
        announced = meta.announced or meta.public or false,
        url = meta.url or meta.public_url,
        props = meta.props,
        events = meta.events,
    }
end

-- Every view.component, sorted by name (a missing name sorts first), then id.
function components.find_all()
    local entries, err = registry.find({ ["meta.type"] = "view.component" })
    if err then
        return nil, "Failed to find view components: " .. tostring(err)
    end
    local list = {}
    for _, entry in ipairs(entries or {}) do
        if entry.meta then
            table.insert(list, component_of(entry))
        end
    end
    table.sort(list, function(a, b)
        local an = type(a.name) == "string" and a.name or ""
        local bn = type(b.name) == "string" and b.name or ""
        if an ~= bn then
            return an < bn
        end
        return tostring(a.id) < tostring(b.id)
    end)
    return list
end

-- One component by id.
function components.get(component_id)
    if not component_id then
        return nil, "Component ID is required"
    end
    local entry, err = registry.get(component_id)
    if err or not entry then
        return nil, "Component not found: " .. (err and tostring(err) or "unknown error")
    end
    if not (entry.meta and entry.meta.type == "view.component") then
        return nil, "Invalid component type for ID: " .. component_id
    end
    return component_of(entry)
end

-- The first component whose meta.tag_name is tag_name (the registry does not keep tags unique).
function components.find_by_tag_name(tag_name)
    if not tag_name or tag_name == "" then
        return nil, "Tag name is required"
    end
    local entries, err = registry.find({ ["meta.type"] = "view.component", ["meta.tag_name"] = tag_name })
    if err then
        return nil, "Failed to query registry: " .. tostring(err)
    end
    if not entries or #entries == 0 then
        return nil, "No view.component registered for tag: " .. tag_name
    end
    return component_of(entries[1])
end

-- The component's url (plus base_path) as an absolute base URL ending in "/", as a page's (a
-- relative url is prefixed with the PUBLIC_API_URL env variable when that is set).
function components.resolve_base_url(component)
    return page_registry.resolve_base_url(component)
end

-- Whether the task's actor may use the component: always when it is not secure; otherwise only
-- with an actor and scope that allow "view" on "component:<id>".
function components.can_access(component)
    if not component.secure then
        return true
    end
    if not security.actor() or not security.scope() then
        return false
    end
    return security.can("view", "component:" .. component.id)
end

return components
