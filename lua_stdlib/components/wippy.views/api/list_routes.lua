-- GET /pages/routes: {success, count, routes} where routes maps each valid mount route to the
-- page that claims it, for the pages the caller may see (announced or not: a hidden page may still
-- own a URL). Any invalid or doubly claimed route fails the whole answer with 500 and every
-- problem, one a line, since the front end cannot route around it.
local http = require("http")
local page_registry = require("page_registry")

local function handler()
    local res = http.response()
    local all, err = page_registry.find_all()
    if err then
        res:set_status(http.STATUS.INTERNAL_ERROR)
        return res:write_json({ success = false, error = err })
    end
    local owners, issues = page_registry.validate_mount_routes(all)
    if #issues > 0 then
        res:set_status(http.STATUS.INTERNAL_ERROR)
        return res:write_json({ success = false, error = table.concat(issues, "\n") })
    end
    local routes, count = {}, 0
    for _, page in ipairs(all) do
        local route = page.mount_route
        if route and owners[route] == page.id and page_registry.can_access(page) then
            routes[route] = page.id
            count = count + 1
        end
    end
    res:set_content_type(http.CONTENT.JSON)
    res:set_status(http.STATUS.OK)
    res:write_json({ success = true, count = count, routes = routes })
end

return { handler = handler }
