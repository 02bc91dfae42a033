-- A view component (from component_registry) as a wippy-component-1.0 package descriptor: the
-- camelCase shape /components/list and /components/by-tag answer with. The registry entry is the
-- only source here (the runtime does not fetch a front-end build's wippy-meta.json), so the
-- fields it leaves out take the descriptor's defaults.
local descriptors = {}

function descriptors.component(component, base_url)
    return {
        id = tostring(component.id),
        name = component.name or "",
        version = "1.0.0",
        specification = "wippy-component-1.0",
        title = component.title or "",
        description = component.description,
        baseUrl = base_url,
        browser = component.entry_point or "index.js",
        wippy = {
            tagName = component.tag_name,
            type = "widget",
            props = component.props,
            events = component.events,
            autoRegister = component.auto_register == true,
        },
    }
end

return descriptors
