-- GET /pages/content/{id}: a template page rendered on the server (its content type, the route
-- and query parameters passed to its data function), or for a component page the
-- wippy-component-1.0 package descriptor the front end loads it by. Failures answer
-- {success = false, error, details}: 404 not a page, 401 not allowed, 500 rendering failed.
local http = require("http")
local page_registry = require("page_registry")
local renderer = require("renderer")

local function fail(res, status, error, details)
    res:set_status(status)
    res:write_json({ success = false, error = error, details = details })
end

-- The descriptor of a component page, from its registry entry alone.
local function descriptor(page)
    return {
        name = page.name or page.id,
        version = "1.0.0",
        specification = "wippy-component-1.0",
        title = page.title,
        baseUrl = page_registry.resolve_base_url(page),
        wippy = {
            type = "page",
            path = page.entry_point or "index.html",
            -- the front end refuses a page descriptor without a proxy block; absent keys mean "on"
            proxy = page.proxy or { enabled = true },
            configOverrides = page.config_overrides,
            renderEngine = page.render_engine,
        },
    }
end

local function handler()
    local req, res = http.request(), http.response()
    local page_id = req:param("id")
    if not page_id or page_id == "" then
        return fail(res, http.STATUS.BAD_REQUEST, "Missing page ID", "A page ID must be provided in the URL")
    end
    local page, err = page_registry.get(page_id)
    if err then
        return fail(res, http.STATUS.NOT_FOUND, "Page not found", err)
    end
    if not page_registry.can_access(page) then
        return fail(res, http.STATUS.UNAUTHORIZED, "Access denied", "You do not have permission to view this page")
    end
    if page.kind == "component" then
        res:set_content_type(http.CONTENT.JSON)
        res:set_status(http.STATUS.OK)
        return res:write_json(descriptor(page))
    end
    local content, render_err = renderer.render(page_id, req:params() or {}, req:query_params() or {})
    if render_err then
        return fail(res, http.STATUS.INTERNAL_ERROR, "Failed to render page", render_err)
    end
    res:set_content_type(tostring(page.content_type or "text/html"))
    res:set_status(http.STATUS.OK)
    res:write(content)
end

return { handler = handler }
