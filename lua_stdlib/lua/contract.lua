-- `contract`: typed interfaces (contract.definition) and their implementations (contract.binding).
--   contract.get(contract_id) -> Contract, err
--   contract.open(binding_id ["?k=v&..."], scope?, options?) -> Instance, err
--   contract.find_implementations(contract_id) -> {binding_id...}, err
--   contract.is(instance, contract_id) -> bool
-- Contract: id() methods() method(name) implementations() open(binding_id?, scope?)
--           with_context(t) with_actor(a) with_scope(s) with_options(t)   (each with_* returns a new Contract)
-- Instance: instance:<method>(...) -> result, err; instance:<method>_async(...) -> Future, err.
-- Scope values (query < with_context < the scope table) become the implementation's ctx values; the
-- implementation runs under the Contract's actor/scope if set, else the caller's. Permissions:
-- contract.get/implementations (contract id), contract.open (binding id), contract.call (method name),
-- contract.context ("context"), contract.security ("security").

local S, errors, bridge, lib, sec = ...
local check = sec.check
local type, pairs, ipairs, setmetatable, tostring, tonumber, error =
    type, pairs, ipairs, setmetatable, tostring, tonumber, error
local sub, find, gsub, char = string.sub, string.find, string.gsub, string.char
local invoke, invoke_async = lib.invoke, lib.invoke_async
local current = S.current

local function fail(kind, message, retryable)
    return errors._make(kind, message, retryable)
end

local function valid_id(id)
    return type(id) == "string" and find(id, "^[^:]+:[^:]+$") ~= nil
end

local function copy_table(t)
    local out = {}
    if t then for k, v in pairs(t) do out[k] = v end end
    return out
end

-- "ns:binding?debug=true&n=5" -> "ns:binding", {debug = true, n = 5}
local function unescape(s)
    s = gsub(s, "+", " ")
    return (gsub(s, "%%(%x%x)", function(h) return char(tonumber(h, 16)) end))
end

local function parse_binding_id(text)
    local q = find(text, "?", 1, true)
    if q == nil then return text, nil end
    local base, query, args = sub(text, 1, q - 1), sub(text, q + 1), {}
    for pair in query:gmatch("[^&;]+") do
        local eq = find(pair, "=", 1, true)
        local k, v
        if eq then k, v = unescape(sub(pair, 1, eq - 1)), unescape(sub(pair, eq + 1)) else k, v = unescape(pair), "" end
        if args[k] == nil then
            if v == "true" then v = true
            elseif v == "false" then v = false
            elseif find(v, "^[-+]?%d+$") then v = math.tointeger(tonumber(v)) or tonumber(v)
            elseif find(v, "^[-+]?%d*%.?%d*[eE]?[-+]?%d*$") and find(v, "%d") then v = tonumber(v) or v end
            args[k] = v
        end
    end
    return base, args
end

-- private state of Contract wrappers and Instances (kept off the objects, whose fields are methods)
local wrappers = setmetatable({}, { __mode = "k" })
local instances = setmetatable({}, { __mode = "k" })

local Instance = { __name = "contract.Instance", __metatable = false }
local Contract = { __name = "contract.Contract", __metatable = false }
Contract.__index = Contract

local function method_of(inst, name)
    for _, def in ipairs(inst.contracts) do
        for _, m in ipairs(def.methods) do
            if m.name == name then return m end
        end
    end
    return nil
end

local function bound_function(inst, name)
    for _, bc in ipairs(inst.binding.contracts) do
        local fn = bc.methods[name]
        if fn ~= nil then return fn, bc end
    end
    return nil
end

local function missing_context(inst, bc)
    local required = bc.context_required
    if required == nil or required[1] == nil then return nil end
    local task = current()
    local ambient = task and task.ctx
    local missing = {}
    for _, key in ipairs(required) do
        if (inst.values == nil or inst.values[key] == nil) and (ambient == nil or ambient[key] == nil) then
            missing[#missing + 1] = key
        end
    end
    if missing[1] == nil then return nil end
    return errors._make("INVALID", "missing required context keys: [" .. table.concat(missing, ", ") .. "]",
        false, { missing_keys = missing })
end

local function call_method(inst, name, async, ...)
    local denied = check("contract.call", name)
    if denied then return nil, denied end
    local fn, bc = bound_function(inst, name)
    if fn == nil then
        return nil, fail("NOT_FOUND", "method '" .. name .. "' not bound by " .. inst.id, false)
    end
    local bad = missing_context(inst, bc)
    if bad then return nil, bad end
    if async then return invoke_async(inst.opts, fn, ...) end
    return invoke(inst.opts, fn, ...)
end

Instance.__index = function(self, key)
    local inst = instances[self]
    if inst == nil or type(key) ~= "string" then return nil end
    local name, async = key, false
    if #key > 6 and sub(key, -6) == "_async" then name, async = sub(key, 1, -7), true end
    if method_of(inst, name) == nil then return nil end
    return function(_, ...) return call_method(inst, name, async, ...) end
end
Instance.__newindex = function() error("contract instances are read-only", 2) end
Instance.__tostring = function(self)
    local inst = instances[self]
    return "contract.Instance(" .. tostring(inst and inst.id) .. ")"
end

-- Open a binding: load it and every contract it implements.
local function instantiate(binding_id, values, w)
    local binding, err = bridge.binding(binding_id)
    if binding == nil then return nil, err end
    local contracts = {}
    for _, bc in ipairs(binding.contracts) do
        local def, derr = bridge.definition(bc.contract)
        if def == nil then
            return nil, errors._make("INTERNAL", "failed to load contract '" .. bc.contract .. "' of binding " ..
                binding_id .. ": " .. tostring(derr), true)
        end
        contracts[#contracts + 1] = def
    end
    local opts = nil
    if values ~= nil or (w and (w.actor ~= nil or w.scope ~= nil or w.options ~= nil)) then
        opts = { context = values, actor = w and w.actor, scope = w and w.scope, options = w and w.options }
    end
    local obj = setmetatable({}, Instance)
    instances[obj] = { id = binding_id, binding = binding, contracts = contracts, values = values, opts = opts }
    return obj, nil
end

local function table_arg(v, what)
    if v ~= nil and type(v) ~= "table" then error(what .. ": expected a table, got " .. type(v), 3) end
    return v
end

local M = {}

function M.open(binding_id, scope, options)
    if type(binding_id) ~= "string" then
        return nil, fail("INVALID", "contract.open: binding id must be a string, got " .. type(binding_id), false)
    end
    local base, query = parse_binding_id(binding_id)
    if not valid_id(base) then
        return nil, fail("INVALID", "contract.open: binding id must be 'namespace:name', got '" .. base .. "'", false)
    end
    table_arg(scope, "contract.open")
    table_arg(options, "contract.open")
    local denied = check("contract.open", base)
    if denied then return nil, denied end
    local values = nil
    if query ~= nil or scope ~= nil then
        values = copy_table(query)
        if scope then for k, v in pairs(scope) do if type(k) == "string" then values[k] = v end end end
    end
    return instantiate(base, values, options and { options = copy_table(options) })
end

function M.get(contract_id)
    if not valid_id(contract_id) then
        return nil, fail("INVALID", "contract.get: contract id must be 'namespace:name', got " ..
            tostring(contract_id), false)
    end
    local denied = check("contract.get", contract_id)
    if denied then return nil, denied end
    local def, err = bridge.definition(contract_id)
    if def == nil then return nil, err end
    local obj = setmetatable({}, Contract)
    wrappers[obj] = { def = def }
    return obj, nil
end

function M.find_implementations(contract_id)
    if not valid_id(contract_id) then
        return nil, fail("INVALID", "contract.find_implementations: contract id must be 'namespace:name', got " ..
            tostring(contract_id), false)
    end
    local denied = check("contract.implementations", contract_id)
    if denied then return nil, denied end
    return bridge.implementations(contract_id), nil
end

function M.is(instance, contract_id)
    local inst = instances[instance]
    if inst == nil then return false end
    for _, def in ipairs(inst.contracts) do
        if def.id == contract_id then return true end
    end
    return false
end

local function wrapper_of(self, what)
    local w = wrappers[self]
    if w == nil then error(what .. ": expected a Contract (use contract:" .. what .. "(...))", 3) end
    return w
end

local function schemas(list)
    if list == nil then return nil end
    local out = {}
    for i, s in ipairs(list) do out[i] = { format = s.format, definition = lib.copy(s.definition) } end
    return out
end

local function method_table(m)
    return { name = m.name, description = m.description or "", input_schemas = schemas(m.input_schemas),
             output_schemas = schemas(m.output_schemas) }
end

function Contract:id() return wrapper_of(self, "id").def.id end

function Contract:methods()
    local out = {}
    for i, m in ipairs(wrapper_of(self, "methods").def.methods) do out[i] = method_table(m) end
    return out
end

function Contract:method(name)
    local def = wrapper_of(self, "method").def
    for _, m in ipairs(def.methods) do
        if m.name == name then return method_table(m), nil end
    end
    return nil, fail("NOT_FOUND", "method '" .. tostring(name) .. "' not found in contract '" .. def.id .. "'", false)
end

function Contract:implementations()
    local def = wrapper_of(self, "implementations").def
    local denied = check("contract.implementations", def.id)
    if denied then return nil, denied end
    return bridge.implementations(def.id), nil
end

function Contract:open(binding_id, scope)
    local w = wrapper_of(self, "open")
    if binding_id ~= nil and type(binding_id) ~= "string" then
        return nil, fail("INVALID", "open: binding id must be a string or nil, got " .. type(binding_id), false)
    end
    table_arg(scope, "open")
    local base, query
    if binding_id == nil then
        local id, err = bridge.default_binding(w.def.id)
        if id == nil then return nil, err end
        base = id
    else
        base, query = parse_binding_id(binding_id)
        if not valid_id(base) then
            return nil, fail("INVALID", "open: binding id must be 'namespace:name', got '" .. base .. "'", false)
        end
    end
    local denied = check("contract.open", base)
    if denied then return nil, denied end
    local values = nil
    if query ~= nil or w.values ~= nil or scope ~= nil then
        values = copy_table(query)
        if w.values then for k, v in pairs(w.values) do values[k] = v end end
        if scope then for k, v in pairs(scope) do if type(k) == "string" then values[k] = v end end end
    end
    return instantiate(base, values, w)
end

local function derived(w, key, value)
    local n = { def = w.def, values = w.values, actor = w.actor, scope = w.scope, options = w.options }
    n[key] = value
    local obj = setmetatable({}, Contract)
    wrappers[obj] = n
    return obj
end

function Contract:with_context(t)
    local w = wrapper_of(self, "with_context")
    if type(t) ~= "table" then error("with_context: expected a table, got " .. type(t), 2) end
    local denied = check("contract.context", "context")
    if denied then return nil, denied end
    local values = copy_table(w.values)
    for k, v in pairs(t) do if type(k) == "string" then values[k] = v end end
    return derived(w, "values", values)
end

function Contract:with_actor(a)
    local w = wrapper_of(self, "with_actor")
    local denied = check("contract.security", "security")
    if denied then return nil, denied end
    if not sec.is_actor(a) then error("with_actor: expected an actor from security.new_actor", 2) end
    return derived(w, "actor", a)
end

function Contract:with_scope(s)
    local w = wrapper_of(self, "with_scope")
    local denied = check("contract.security", "security")
    if denied then return nil, denied end
    if not sec.is_scope(s) then error("with_scope: expected a scope from security.new_scope/named_scope", 2) end
    return derived(w, "scope", s)
end

function Contract:with_options(o)
    local w = wrapper_of(self, "with_options")
    if type(o) ~= "table" then error("with_options: expected a table, got " .. type(o), 2) end
    return derived(w, "options", copy_table(o))
end

Contract.__tostring = function(self)
    local w = wrappers[self]
    return "contract.Contract(" .. tostring(w and w.def.id) .. ")"
end
Contract.__newindex = function() error("contracts are read-only", 2) end

return M
