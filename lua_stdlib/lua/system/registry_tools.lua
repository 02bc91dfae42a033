-- The tools of wippy.registry:agent (entries built by services/_system_agents.py, one per function
-- here, each naming its function as `method`). Each takes the model's arguments and returns a
-- table the model reads as JSON, or nil and an error text naming the entry or argument at fault.
-- They run in the caller's task: the `registry` module checks the caller's permissions, and the
-- versions they make are authored by the calling agent (lua_stdlib/_mod_registry.py).

local registry = require("registry")
local system = require("wippy.system_agents")

local type, tostring, ipairs, pairs, format = type, tostring, ipairs, pairs, string.format
local math_type = math.type

local function describe(v)
    if type(v) == "string" then return format("%q", v) end
    if v == nil then return "nothing" end
    return "a " .. type(v)
end

local function entry_id(args)
    local id = type(args) == "table" and args.id or nil
    if type(id) ~= "string" or not id:match("^[^:]+:[^:]+$") then
        return nil, "id must be an entry id 'namespace:name', not " .. describe(id)
    end
    return id
end

local function optional(args, key, want)
    local v = args[key]
    if v ~= nil and type(v) ~= want then
        return nil, format("%s must be a %s, not %s", key, want == "table" and "JSON object" or want, describe(v))
    end
    return true
end

local function whole(v, key, default, low, high)
    if v == nil then return default end
    if type(v) == "number" and math_type(v) == "float" and v == v // 1 then v = v // 1 end
    if math_type(v) ~= "integer" or v < low or v > high then
        return nil, format("%s must be a whole number from %d to %d, not %s", key, low, high, tostring(v))
    end
    return v
end

-- apply one change (fill(changes) adds it); the new registry version, or nil and the reason
local function apply(what, fill)
    local snapshot, err = registry.snapshot()
    if not snapshot then return nil, what .. ": " .. tostring(err) end
    local changes = snapshot:changes()
    fill(changes)
    local version, apply_err = changes:apply()
    if not version then return nil, what .. " failed: " .. tostring(apply_err) end
    return version:id()
end

local function copy(t)
    local out = {}
    for k, v in pairs(t or {}) do out[k] = v end
    return out
end

local M = {}

function M.list_entries(args)
    args = type(args) == "table" and args or {}
    for _, key in ipairs({ "namespace", "kind", "type" }) do
        local ok, err = optional(args, key, "string")
        if not ok then return nil, err end
    end
    local limit, bad = whole(args.limit, "limit", 100, 1, 1000)
    if not limit then return nil, bad end
    local filter = {}
    if args.namespace then filter[".ns"] = args.namespace end
    if args.kind then filter[".kind"] = args.kind end
    if args.type then filter["meta.type"] = args.type end
    local list, err = registry.find(filter)
    if not list then return nil, "list_entries: " .. tostring(err) end
    local out = {}
    for i, e in ipairs(list) do
        if i > limit then break end
        local meta = e.meta or {}
        out[i] = { id = e.id, kind = e.kind, type = meta.type, comment = meta.comment or meta.description }
    end
    return { count = #list, entries = out, truncated = #list > limit }
end

function M.get_entry(args)
    local id, bad = entry_id(args)
    if not id then return nil, bad end
    local entry, err = registry.get(id)
    if not entry then return nil, tostring(err) end
    return entry
end

function M.create_entry(args)
    local id, bad = entry_id(args)
    if not id then return nil, bad end
    if type(args.kind) ~= "string" or args.kind == "" then
        return nil, "kind must be the entry kind (e.g. 'registry.entry'), not " .. describe(args.kind)
    end
    for _, key in ipairs({ "meta", "data" }) do
        local ok, err = optional(args, key, "table")
        if not ok then return nil, err end
    end
    if registry.get(id) then return nil, "entry " .. id .. " already exists: use update_entry to change it" end
    local entry = { id = id, kind = args.kind, meta = args.meta or {}, data = args.data or {} }
    local version, err = apply("create_entry " .. id, function(c) c:create(entry) end)
    if not version then return nil, err end
    return { id = id, version = version }
end

function M.update_entry(args)
    local id, bad = entry_id(args)
    if not id then return nil, bad end
    for key, want in pairs({ kind = "string", meta = "table", data = "table", replace = "boolean" }) do
        local ok, err = optional(args, key, want)
        if not ok then return nil, err end
    end
    local entry, err = registry.get(id)
    if not entry then return nil, tostring(err) end
    local meta, data = copy(entry.meta), copy(entry.data)
    if args.replace then
        meta, data = args.meta or meta, args.data or data
    else
        for k, v in pairs(args.meta or {}) do meta[k] = v end
        for k, v in pairs(args.data or {}) do data[k] = v end
    end
    local updated = { id = id, kind = args.kind or entry.kind, meta = meta, data = data }
    local version, apply_err = apply("update_entry " .. id, function(c) c:update(updated) end)
    if not version then return nil, apply_err end
    return { id = id, version = version }
end

function M.delete_entry(args)
    local id, bad = entry_id(args)
    if not id then return nil, bad end
    local entry, err = registry.get(id)
    if not entry then return nil, tostring(err) end
    local version, apply_err = apply("delete_entry " .. id, function(c) c:delete(id) end)
    if not version then return nil, apply_err end
    return { id = id, version = version }
end

function M.list_versions(args)
    args = type(args) == "table" and args or {}
    local limit, bad = whole(args.limit, "limit", 20, 1, 500)
    if not limit then return nil, bad end
    local list, err = system.versions(limit)
    if not list then return nil, "list_versions: " .. tostring(err) end
    local current = registry.current_version()
    return { current = current:id(), versions = list }
end

function M.rollback(args)
    args = type(args) == "table" and args or {}
    local version, bad = whole(args.version, "version", nil, 1, math.maxinteger)
    if not version then return nil, bad or "version is required: the registry version to restore" end
    local history = registry.history()
    local found, missing = history:get_version(version)
    if not found then return nil, "rollback: " .. tostring(missing) end
    local ok, err = registry.apply_version(version)
    if not ok then return nil, format("rollback to version %d failed: %s", version, tostring(err)) end
    return { restored = version, version = registry.current_version():id() }
end

return M
