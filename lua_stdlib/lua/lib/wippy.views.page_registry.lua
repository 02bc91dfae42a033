-- wippy.views:page_registry, native: the app's view pages, read from the registry.
--
-- A page is any entry with meta.type "view.page" (get also accepts "view.component"). A
-- template.jet entry is a "template" page rendered on the server (its set, data_func and
-- resources say how); any other entry is a "component" page served from meta.url. Missing
-- meta fields stay nil where Wippy leaves them raw (name, title, parent, proxy, ...) and take
-- Wippy's defaults elsewhere. Answers are Wippy's: value, or nil and an error string.
local registry = require("registry")
local security = require("security")
local env = require("env")

local pages = {}

local UNORDERED = 9999

-- "ns:name" for a reference written relative to the entry's own namespace.
local function qualified(entry_id, ref)
    if ref:find(":", 1, true) then
        return ref
    end
    local ns = entry_id:match("^([^:]*):")
    return ns .. ":" .. ref
end

local function entry_name(entry_id)
    return entry_id:match(":(.*)$") or entry_id
end

local function kind_of(entry)
    if entry.kind == "template.jet" then
        return "template"
    end
    return "component"
end

-- The fields find_all and get share, with Wippy's defaults.
local function summary(entry)
    local meta = entry.meta
    local info = {
        id = entry.id,
        name = meta.name,
        title = meta.title,
        icon = meta.icon or "",
        order = meta.order or UNORDERED,
        group = meta.group or "",
        group_icon = meta.group_icon or "",
        group_order = meta.group_order or UNORDERED,
        group_placement = meta.group_placement or "default",
        secure = meta.secure or false,
        parent = meta.parent,
        public = meta.public or false,
        announced = meta.announced or meta.public or false,
        inline = meta.inline or false,
        kind = kind_of(entry),
        config_overrides = meta.config_overrides,
        proxy = meta.proxy,
        render_engine = meta.render_engine,
        mount_route = meta.mountRoute,
    }
    return info
end

local function by_order_then_title(a, b)
    if a.order ~= b.order then
        return a.order < b.order
    end
    return tostring(a.title or "") < tostring(b.title or "")
end

-- Every view.page, sorted by meta.order then title. Component pages carry their url.
function pages.find_all()
    local entries, err = registry.find({ ["meta.type"] = "view.page" })
    if err then
        return nil, "Failed to find virtual pages: " .. tostring(err)
    end
    local list = {}
    for _, entry in ipairs(entries or {}) do
        if entry.meta then
            local info = summary(entry)
            info.internal = entry.meta.internal or ""
            if info.kind == "component" then
                info.url = entry.meta.url or entry.meta.public_url
            end
            table.insert(list, info)
        end
    end
    table.sort(list, by_order_then_title)
    return list
end

-- One page (or view component) by id, with what rendering or loading it needs.
function pages.get(page_id)
    if not page_id then
        return nil, "Page ID is required"
    end
    local entry, err = registry.get(page_id)
    if err or not entry then
        return nil, "Page not found: " .. (err and tostring(err) or "unknown error")
    end
    local meta_type = entry.meta and entry.meta.type
    if meta_type ~= "view.page" and meta_type ~= "view.component" then
        return nil, "Invalid page type for ID: " .. page_id
    end

    local page = summary(entry)
    page.content_type = entry.meta.content_type or "text/html"
    local data = entry.data or {}
    if page.kind == "template" then
        page.template_set = data.set and qualified(entry.id, data.set) or nil
        page.template_name = entry.meta.name or entry_name(entry.id)
        if data.data_func and data.data_func ~= "" then
            page.data_func = qualified(entry.id, data.data_func)
        end
        page.resources = {}
        for i, resource_id in ipairs(data.resources or {}) do
            page.resources[i] = qualified(entry.id, resource_id)
        end
    else
        page.url = entry.meta.url or entry.meta.public_url
        page.base_path = entry.meta.base_path
        page.entry_point = entry.meta.entry_point
    end
    return page
end

-- The page's url (plus base_path) as an absolute base URL ending in "/"; a relative url is
-- prefixed with the PUBLIC_API_URL env variable when that is set.
function pages.resolve_base_url(page)
    local base = page.url or ""
    local base_path = page.base_path or ""
    if base_path ~= "" then
        if base:sub(-1) ~= "/" then
            base = base .. "/"
        end
        base = base .. base_path
    end
    local origin = env.get("PUBLIC_API_URL") or ""
    if origin ~= "" and base ~= "" and not base:match("^https?://") then
        base = origin .. base
    end
    if base ~= "" and base:sub(-1) ~= "/" then
        base = base .. "/"
    end
    return base
end

-- Mount routes (meta.mountRoute): "/:part(.*)*" or "/<seg>/.../:part(.*)*", each literal segment
-- of lowercase letters, digits and hyphens.
local CATCH_ALL = "/:part(.*)*"

local function mount_route_ok(route)
    if type(route) ~= "string" or #route < #CATCH_ALL or route:sub(-#CATCH_ALL) ~= CATCH_ALL then
        return false
    end
    local prefix = route:sub(1, #route - #CATCH_ALL)
    if prefix == "" then
        return true
    end
    -- one or more "/segment" pieces and nothing else (no "//", no trailing "/")
    local rest = prefix
    while rest ~= "" do
        local segment, after = rest:match("^/([a-z0-9%-]+)(.*)$")
        if not segment then
            return false
        end
        rest = after
    end
    return true
end

local function bad_route(page_id, route)
    return string.format(
        '[views] page "%s" has invalid mountRoute "%s"'
            .. ' — v1 only supports "/<literal>/:part(.*)*" and "/:part(.*)*".'
            .. " Literal segments must be lowercase alphanumerics plus hyphens."
            .. ' Use ":part" (not ":pathMatch") to match the gen-2-chat system-route convention.',
        tostring(page_id), tostring(route))
end

local function route_conflict(route, page_id, earlier)
    return string.format(
        '[views] mount route conflict: pages "%s" and "%s" both claim "%s".'
            .. " Mount routes must be unique across all registered view.page entries."
            .. " Remove mountRoute from one of the pages, pick a different path,"
            .. " or override in the top-level app by re-declaring the page id with a different mountRoute.",
        tostring(page_id), tostring(earlier), tostring(route))
end

-- Check the pages' mount routes: (route -> page id for the good ones, list of problems). A page
-- without mountRoute is skipped; any other non-string value is a problem, not silently ignored.
function pages.validate_mount_routes(all_pages)
    local routes, issues, owner = {}, {}, {}
    if type(all_pages) ~= "table" then
        return routes, issues
    end
    for _, page in ipairs(all_pages) do
        local route = page.mount_route
        if route ~= nil and route ~= "" then
            if not mount_route_ok(route) then
                table.insert(issues, bad_route(page.id, route))
            elseif type(page.id) ~= "string" or page.id == "" then
                table.insert(issues, string.format('[views] page with mountRoute "%s" is missing a valid id.', route))
            elseif owner[route] and owner[route] ~= page.id then
                table.insert(issues, route_conflict(route, page.id, owner[route]))
            else
                owner[route] = page.id
                routes[route] = page.id
            end
        end
    end
    return routes, issues
end

-- Mount route -> page id over all pages; nil and every problem (one a line) when any is wrong.
function pages.find_mount_routes()
    local all, err = pages.find_all()
    if err then
        return nil, err
    end
    local routes, issues = pages.validate_mount_routes(all)
    if #issues > 0 then
        return nil, table.concat(issues, "\n")
    end
    return routes
end

-- Whether the task's actor may see the page: always for a page that is not secure; otherwise
-- only with an actor and scope that allow "view" on "page:<id>".
function pages.can_access(page)
    if not page.secure then
        return true
    end
    if not security.actor() or not security.scope() then
        return false
    end
    return security.can("view", "page:" .. page.id)
end

return pages
