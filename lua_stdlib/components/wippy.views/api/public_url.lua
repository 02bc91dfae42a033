-- GET /pages/public/{id}: {baseUrl} of a page the caller may see; 404 {error = "Page not found"}
-- for an id that is not a page, 401 {error = "Access denied"} for a secure page it may not see.
local http = require("http")
local page_registry = require("page_registry")

local function handler()
    local req, res = http.request(), http.response()
    local page_id = req:param("id")
    if not page_id or page_id == "" then
        res:set_status(http.STATUS.BAD_REQUEST)
        return res:write_json({ error = "Missing page ID" })
    end
    local page, err = page_registry.get(page_id)
    if err then
        res:set_status(http.STATUS.NOT_FOUND)
        return res:write_json({ error = "Page not found" })
    end
    if not page_registry.can_access(page) then
        res:set_status(http.STATUS.UNAUTHORIZED)
        return res:write_json({ error = "Access denied" })
    end
    res:set_content_type(http.CONTENT.JSON)
    res:set_status(http.STATUS.OK)
    res:write_json({ baseUrl = page_registry.resolve_base_url(page) })
end

return { handler = handler }
