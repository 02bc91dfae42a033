-- GET /components/list: {success, count, components} with the announced components the caller
-- may use, as package descriptors sorted by name; ?auto_register=true keeps only those the page
-- registers itself. 500 {success = false, error} when the registry cannot be read.
local http = require("http")
local component_registry = require("component_registry")
local descriptors = require("descriptors")

local function handler()
    local req, res = http.request(), http.response()
    local all, err = component_registry.find_all()
    if err then
        res:set_status(http.STATUS.INTERNAL_ERROR)
        return res:write_json({ success = false, error = err })
    end
    local only_auto = req:query("auto_register") == "true"
    local components = {}
    for _, component in ipairs(all) do
        if component.announced and component_registry.can_access(component)
            and (not only_auto or component.auto_register) then
            local base_url = component_registry.resolve_base_url(component)
            table.insert(components, descriptors.component(component, base_url))
        end
    end
    table.sort(components, function(a, b) return a.name < b.name end)
    res:set_content_type(http.CONTENT.JSON)
    res:set_status(http.STATUS.OK)
    res:write_json({ success = true, count = #components, components = components })
end

return { handler = handler }
