-- wippy.views:env_loader, native: the env variables a view may show, named by the registry.
--
-- An entry with meta.type "view.env_mapping" maps template names to env variable names in its
-- data.mappings (meta.priority 0-100, default 0). Mappings merge by ascending priority, so a
-- higher priority wins a name; the merged names are then resolved with env.get, and a variable
-- that is unset (or not readable) is left out. The renderer gives the result to templates as
-- `env`. Answers are Wippy's: value, or nil and an error string; the contract_* functions answer
-- in the shape of Wippy's env provider contract ({success, mappings | resolved | error}).
local registry = require("registry")
local env = require("env")

local env_loader = {}

local function range(min, max)
    return table.freeze({ min = min, max = max })
end

-- Wippy's priority bands: framework 0-9, system 10-19, application 20-29, environment 30-100.
local PRIORITY_CONVENTIONS = table.freeze({
    FRAMEWORK_DEFAULTS = range(0, 9),
    SYSTEM_OVERRIDES = range(10, 19),
    APPLICATION_MAPPINGS = range(20, 29),
    ENVIRONMENT_OVERRIDES = range(30, 100),
})

-- Every view.env_mapping entry (further narrowed by a registry filter) as {id, priority, mappings}.
function env_loader.load_mappings(filter)
    local query = { ["meta.type"] = "view.env_mapping" }
    for key, value in pairs(filter or {}) do
        query[key] = value
    end
    local entries, err = registry.find(query)
    if err then
        return nil, "Failed to find env_mapping entries: " .. tostring(err)
    end
    local out = {}
    for _, entry in ipairs(entries or {}) do
        local priority = (entry.meta and entry.meta.priority) or 0
        if type(priority) ~= "number" or priority < 0 or priority > 100 then
            return nil, "Invalid priority " .. tostring(priority) .. " for entry " .. entry.id .. " (must be 0-100)"
        end
        local data = entry.data or {}
        table.insert(out, { id = entry.id, priority = priority, mappings = data.mappings or {} })
    end
    return out, nil
end

-- The mappings merged into one {name = env variable}: by ascending priority (then id, so equal
-- priorities merge the same way every time), later ones overriding earlier ones.
function env_loader.build_env_context(mappings_data)
    if not mappings_data then
        return {}, nil
    end
    table.sort(mappings_data, function(a, b)
        if a.priority ~= b.priority then
            return a.priority < b.priority
        end
        return tostring(a.id) < tostring(b.id)
    end)
    local context = {}
    for _, item in ipairs(mappings_data) do
        for name, variable in pairs(item.mappings or {}) do
            context[name] = variable
        end
    end
    return context, nil
end

-- load_mappings then build_env_context.
function env_loader.get_env_context(filter)
    local mappings_data, err = env_loader.load_mappings(filter)
    if err then
        return nil, "Failed to load mappings: " .. err
    end
    return env_loader.build_env_context(mappings_data)
end

-- {name = value} for each {name = env variable} whose variable has a value; pairs that are not
-- both strings are skipped.
function env_loader.resolve_env_values(context)
    local resolved = {}
    for name, variable in pairs(context or {}) do
        if type(name) == "string" and type(variable) == "string" then
            local value = env.get(variable)
            if value then
                resolved[name] = value
            end
        end
    end
    return resolved, nil
end

-- What the renderer gives templates as `env`: the merged mappings, resolved.
function env_loader.get_resolved_env(filter)
    local context, err = env_loader.get_env_context(filter)
    if err then
        return nil, err
    end
    return env_loader.resolve_env_values(context)
end

function env_loader.get_priority_conventions()
    return PRIORITY_CONVENTIONS
end

-- Whether a priority is a number in 0-100 and, with a category, inside that category's band.
function env_loader.validate_priority(priority, category)
    if type(priority) ~= "number" then
        return false, "Priority must be a number"
    end
    if priority < 0 or priority > 100 then
        return false, "Priority must be between 0 and 100"
    end
    local band = category and PRIORITY_CONVENTIONS[category]
    if band and (priority < band.min or priority > band.max) then
        return false, "Priority " .. priority .. " outside " .. category
            .. " range (" .. band.min .. "-" .. band.max .. ")"
    end
    return true, nil
end

-- The lowest priority of a category's band.
function env_loader.get_recommended_priority(category)
    local band = PRIORITY_CONVENTIONS[category]
    if not band then
        return nil, "Unknown category: " .. tostring(category)
    end
    return band.min, nil
end

-- Contract form of load_mappings: {filter?} -> {success, mappings | error}.
function env_loader.contract_load_mappings(params)
    local mappings, err = env_loader.load_mappings(params and params.filter)
    if err then
        return { success = false, error = err }
    end
    return { success = true, mappings = mappings }
end

-- Contract form of resolve_env_values: {context} -> {success, resolved | error}.
function env_loader.contract_resolve_env_values(params)
    if not params or not params.context then
        return { success = false, error = "Missing required parameter: context" }
    end
    local resolved = env_loader.resolve_env_values(params.context)
    return { success = true, resolved = resolved }
end

return env_loader
