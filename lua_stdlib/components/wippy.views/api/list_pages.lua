-- GET /pages/list: {success, count, pages} with the announced pages the caller may see, sorted
-- by group (groupOrder, then name), then order, then title. 500 {success = false, error} when the
-- registry cannot be read.
local http = require("http")
local page_registry = require("page_registry")

local UNORDERED = 9999

local function text(value, fallback)
    if type(value) == "string" then
        return value
    end
    return fallback
end

local function listed(page)
    return {
        id = tostring(page.id),
        name = text(page.name, ""),
        title = text(page.title, ""),
        icon = text(page.icon, ""),
        order = tonumber(page.order) or UNORDERED,
        placement = text(page.placement, "default"),
        group = text(page.group, ""),
        groupIcon = text(page.group_icon, ""),
        groupOrder = tonumber(page.group_order) or UNORDERED,
        groupPlacement = text(page.group_placement, "default"),
        secure = page.secure == true,
        announced = page.announced == true,
        internal = text(page.internal, ""),
        hidden = page.inline and 1 or 0,
        configOverrides = page.config_overrides,
        mountRoute = page.mount_route,
    }
end

local function menu_order(a, b)
    if a.group ~= b.group then
        if a.groupOrder ~= b.groupOrder then
            return a.groupOrder < b.groupOrder
        end
        return a.group < b.group
    end
    if a.order ~= b.order then
        return a.order < b.order
    end
    return a.title < b.title
end

local function handler()
    local res = http.response()
    local all, err = page_registry.find_all()
    if err then
        res:set_status(http.STATUS.INTERNAL_ERROR)
        return res:write_json({ success = false, error = err })
    end
    local pages = {}
    for _, page in ipairs(all) do
        if page.announced and page_registry.can_access(page) then
            table.insert(pages, listed(page))
        end
    end
    table.sort(pages, menu_order)
    res:set_content_type(http.CONTENT.JSON)
    res:set_status(http.STATUS.OK)
    res:write_json({ success = true, count = #pages, pages = pages })
end

return { handler = handler }
