-- wippy.views:resource_registry, native: the styles, scripts, fonts, ... a rendered page links.
--
-- A resource is a registry.entry with meta.type "view.resource". It reaches a page when it is
-- global, when its meta.template_set is the page's set, or when the page lists it in resources.
-- Templates receive them grouped by meta.resource_type ("other" when unset), each group sorted
-- by meta.order. Answers are Wippy's: value, or nil and an error string.
local registry = require("registry")

local resources = {}

local function resource_of(entry)
    local meta = entry.meta
    return {
        id = entry.id,
        name = meta.name or "",
        resource_type = meta.resource_type or "other",
        order = meta.order or 9999,
        global = meta.global or false,
        template_set = meta.template_set,
        url = meta.url,
        inline = meta.inline,
        integrity = meta.integrity,
        crossorigin = meta.crossorigin or meta.cross_origin,
        media = meta.media,
        defer = meta.defer,
        async = meta.async,
    }
end

-- Every resource, keyed by entry id.
function resources.find_all()
    local entries, err = registry.find({ [".kind"] = "registry.entry", ["meta.type"] = "view.resource" })
    if err then
        return nil, "Failed to find resources: " .. tostring(err)
    end
    local found = {}
    for _, entry in ipairs(entries or {}) do
        if entry.meta then
            found[entry.id] = resource_of(entry)
        end
    end
    return found
end

-- One resource by id.
function resources.get(resource_id)
    if not resource_id then
        return nil, "Resource ID is required"
    end
    local entry, err = registry.get(resource_id)
    if err or not entry then
        return nil, "Resource not found: " .. (err and tostring(err) or "unknown error")
    end
    if not entry.meta or entry.meta.type ~= "view.resource" then
        return nil, "Invalid resource type for ID: " .. resource_id
    end
    return resource_of(entry)
end

-- Resources (a map or a list) as {resource_type = {resource, ...}}, each list by order (then id,
-- so equal orders come out the same every time).
function resources.group_by_type(list)
    local grouped = {}
    for _, resource in pairs(list or {}) do
        local group = grouped[resource.resource_type]
        if not group then
            group = {}
            grouped[resource.resource_type] = group
        end
        table.insert(group, resource)
    end
    for _, group in pairs(grouped) do
        table.sort(group, function(a, b)
            if a.order ~= b.order then
                return a.order < b.order
            end
            return tostring(a.id) < tostring(b.id)
        end)
    end
    return grouped
end

-- The global resources of a map, keyed by id.
function resources.get_globals(list)
    local out = {}
    for id, resource in pairs(list or {}) do
        if resource.global then
            out[id] = resource
        end
    end
    return out
end

-- The resources of a map bound to one template set, keyed by id.
function resources.get_template_set_resources(list, template_set_id)
    local out = {}
    for id, resource in pairs(list or {}) do
        if resource.template_set ~= nil and resource.template_set == template_set_id then
            out[id] = resource
        end
    end
    return out
end

-- What a page links: the global resources, its template set's, and the ones it names (ids not
-- found among all_resources are skipped). all_resources defaults to find_all(); page_registry is
-- accepted for Wippy's signature and not needed.
function resources.collect_for_page(page, page_registry, all_resources)
    if not all_resources then
        local found, err = resources.find_all()
        if err then
            return {}, "Failed to collect resources: " .. err
        end
        all_resources = found
    end
    local out = resources.get_globals(all_resources)
    if page.template_set then
        for id, resource in pairs(resources.get_template_set_resources(all_resources, page.template_set)) do
            out[id] = resource
        end
    end
    for _, id in ipairs(page.resources or {}) do
        if all_resources[id] then
            out[id] = all_resources[id]
        end
    end
    return out
end

return resources
