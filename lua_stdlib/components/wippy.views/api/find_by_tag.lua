-- GET /components/by-tag/{tag}: {success, component} for the component registered under a custom
-- element tag name. 404 {success = false, error} when none is, or it is not announced; 403 for a
-- secure component the caller may not use.
local http = require("http")
local component_registry = require("component_registry")
local descriptors = require("descriptors")

local function fail(res, status, error)
    res:set_status(status)
    res:write_json({ success = false, error = error })
end

local function handler()
    local req, res = http.request(), http.response()
    local tag = req:param("tag")
    if not tag or tag == "" then
        return fail(res, http.STATUS.BAD_REQUEST, "Tag name is required")
    end
    local component, err = component_registry.find_by_tag_name(tag)
    if err or not component then
        return fail(res, http.STATUS.NOT_FOUND, err or ("No view.component registered for tag: " .. tag))
    end
    if not component.announced then
        return fail(res, http.STATUS.NOT_FOUND, "Component is not announced")
    end
    if component.secure and not component_registry.can_access(component) then
        return fail(res, http.STATUS.FORBIDDEN, "Access denied")
    end
    local base_url = component_registry.resolve_base_url(component)
    res:set_content_type(http.CONTENT.JSON)
    res:set_status(http.STATUS.OK)
    res:write_json({ success = true, component = descriptors.component(component, base_url) })
end

return { handler = handler }
