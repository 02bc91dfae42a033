-- The tools of wippy.coder:agent (entries built by services/_system_agents.py, one per function
-- here). They read and change the `source` of function.lua and library.lua entries through registry
-- changesets. A new source must translate and compile (wippy.system_agents.check_source) before
-- anything is applied: otherwise the tool returns the compiler's error and the registry is unchanged.
-- They run in the caller's task, so the `registry` module checks the caller's permissions.

local registry = require("registry")
local system = require("wippy.system_agents")

local type, tostring, ipairs, pairs, format = type, tostring, ipairs, pairs, string.format
local find, sub = string.find, string.sub

local CODE_KINDS = { ["function.lua"] = true, ["library.lua"] = true }

local function describe(v)
    if type(v) == "string" then return format("%q", v) end
    if v == nil then return "nothing" end
    return "a " .. type(v)
end

local function line_count(text)
    local n = 1
    for _ in text:gmatch("\n") do n = n + 1 end
    return n
end

-- the code entry args.id names, or nil and why not
local function code_entry(args)
    local id = type(args) == "table" and args.id or nil
    if type(id) ~= "string" or not id:match("^[^:]+:[^:]+$") then
        return nil, "id must be an entry id 'namespace:name', not " .. describe(id)
    end
    local entry, err = registry.get(id)
    if not entry then return nil, tostring(err) end
    if not CODE_KINDS[entry.kind] then
        return nil, format("%s is a %s entry: only function.lua and library.lua sources can be edited", id, entry.kind)
    end
    if type(entry.data) ~= "table" or type(entry.data.source) ~= "string" then
        return nil, id .. " has no inline source to edit"
    end
    return entry
end

-- check the new source, then apply it as an update of entry; {id, version, lines} or nil, error
local function replace_source(entry, source)
    local ok, err = system.check_source(entry.id, source)
    if not ok then return nil, tostring(err) .. " (nothing was changed)" end
    local data = {}
    for k, v in pairs(entry.data) do data[k] = v end
    data.source = source
    local snapshot, snap_err = registry.snapshot()
    if not snapshot then return nil, tostring(snap_err) end
    local changes = snapshot:changes()
    changes:update({ id = entry.id, kind = entry.kind, meta = entry.meta or {}, data = data })
    local version, apply_err = changes:apply()
    if not version then return nil, format("changing %s failed: %s", entry.id, tostring(apply_err)) end
    return { id = entry.id, version = version:id(), lines = line_count(source) }
end

local M = {}

function M.list_code(args)
    args = type(args) == "table" and args or {}
    if args.namespace ~= nil and type(args.namespace) ~= "string" then
        return nil, "namespace must be a string, not " .. describe(args.namespace)
    end
    local out = {}
    for _, kind in ipairs({ "function.lua", "library.lua" }) do
        local list, err = registry.find({ [".kind"] = kind, [".ns"] = args.namespace })
        if not list then return nil, "list_code: " .. tostring(err) end
        for _, e in ipairs(list) do
            local data = e.data or {}
            out[#out + 1] = {
                id = e.id, kind = e.kind, method = data.method,
                lines = type(data.source) == "string" and line_count(data.source) or nil,
            }
        end
    end
    return { count = #out, entries = out }
end

function M.read_source(args)
    local entry, err = code_entry(args)
    if not entry then return nil, err end
    local data = entry.data
    return {
        id = entry.id, kind = entry.kind, method = data.method, modules = data.modules, imports = data.imports,
        lines = line_count(data.source), source = data.source,
    }
end

function M.write_source(args)
    local entry, err = code_entry(args)
    if not entry then return nil, err end
    if type(args.source) ~= "string" then return nil, "source must be the new Lua source text, not " .. describe(args.source) end
    return replace_source(entry, args.source)
end

function M.edit_source(args)
    local entry, err = code_entry(args)
    if not entry then return nil, err end
    local old, new = args.old_text, args.new_text
    if type(old) ~= "string" or old == "" then return nil, "old_text must be the non-empty text to replace" end
    if type(new) ~= "string" then return nil, "new_text must be text, not " .. describe(new) end
    local source = entry.data.source
    local first, last = find(source, old, 1, true)
    if not first then return nil, format("old_text does not occur in the source of %s (copy it verbatim)", entry.id) end
    local count, at = 1, last + 1
    while true do
        local s, e = find(source, old, at, true)
        if not s then break end
        count, at = count + 1, e + 1
    end
    if count > 1 then
        return nil, format("old_text occurs %d times in %s: include more of the text so it occurs once", count, entry.id)
    end
    return replace_source(entry, sub(source, 1, first - 1) .. new .. sub(source, last + 1))
end

return M
