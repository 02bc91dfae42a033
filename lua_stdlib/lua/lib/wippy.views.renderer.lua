-- wippy.views:renderer, native: a template page rendered to text on the server.
--
-- render(page_id, route_params, query_params) finds the page (page_registry), checks the task's
-- actor may see it, calls its data_func with {params, query}, and renders the page's template
-- from its template set with these variables:
--   data          what the data function returned ({} without one)
--   resources     the page's resources grouped by type (resource_registry)
--   route_params  query_params   the arguments as given
--   env           the env variables the view.env_mapping entries name (env_loader)
-- Answers are Wippy's: the text, or nil and an error string that says which step failed.
local templates = require("templates")
local funcs = require("funcs")
local page_registry = require("page_registry")
local resource_registry = require("resource_registry")
local env_loader = require("env_loader")

local renderer = {}

-- The page's data: what its data_func returns for {params, query}, {} when it has none.
function renderer.get_page_data(page, params, query)
    if not page or not page.data_func or page.data_func == "" then
        return {}, nil
    end
    local result, err = funcs.new():call(page.data_func, { params = params or {}, query = query or {} })
    if err then
        return nil, "Failed to get page data from '" .. page.data_func .. "': " .. tostring(err)
    end
    return result or {}, nil
end

local function page_resources(page)
    local all, err = resource_registry.find_all()
    if err then
        return nil, "Failed to load resources: " .. err
    end
    return resource_registry.group_by_type(resource_registry.collect_for_page(page, page_registry, all))
end

local function page_env()
    local resolved, err = env_loader.get_resolved_env()
    if err then
        -- the page still renders, without env values (as Wippy does)
        print("Warning: Failed to load environment mappings: " .. err)
        return {}
    end
    return resolved or {}
end

function renderer.render(page_id, params, query)
    if not page_id then
        return nil, "Page ID is required"
    end
    local page, err = page_registry.get(page_id)
    if err then
        return nil, "Failed to get page '" .. page_id .. "': " .. err
    end
    if not page_registry.can_access(page) then
        return nil, "Access denied to page '" .. page_id .. "'"
    end

    local data, data_err = renderer.get_page_data(page, params, query)
    if data_err then
        return nil, data_err
    end
    local grouped, res_err = page_resources(page)
    if res_err then
        return nil, res_err
    end
    local context = {
        data = data,
        resources = grouped,
        query_params = query,
        route_params = params,
        env = page_env(),
    }

    local set_id = page.template_set
    if not set_id then
        return nil, "Page '" .. page_id .. "' has no template_set defined"
    end
    local set, set_err = templates.get(set_id)
    if set_err then
        return nil, "Failed to load template set '" .. set_id .. "': " .. tostring(set_err)
    end
    local content, render_err = set:render(page.template_name, context)
    set:release()
    if render_err then
        return nil, "Failed to render template '" .. tostring(page.template_name) .. "': " .. tostring(render_err)
    end
    return content, nil
end

return renderer
