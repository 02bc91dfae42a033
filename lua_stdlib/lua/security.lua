-- Security for Lua code: actors, scopes, policies, and the one permission check every module uses.
--
--   SEC.check(action, resource, meta) -> nil | PERMISSION_DENIED error   (for modules)
--   security.actor() / scope() / can(action, resource, meta?) / new_actor(id, meta?) /
--   new_scope(policies?) / policy(id) / named_scope(group) / token_store(id)
--   Actor :id() :meta()   Scope :with(p) :without(id) :contains(id) :policies() :evaluate(...)
--   Policy :id() :evaluate(actor, action, resource, meta?) -> "allow" | "deny" | "undefined"
--
-- The check runs against the *task's* actor and scope, which only trusted paths set (an executor
-- with funcs.security permission, a service's lifecycle.security, token validation). Actors and
-- scopes are recognised by identity (a private registry), so a table that looks like an actor is
-- not one. Decisions follow core/_security.py exactly (property-tested against it).
-- Loaded with (scheduler, errors, host bridge, readonly).

local S, errors, host, readonly = ...
local setmetatable, type, tostring, pairs, ipairs, error, select =
    setmetatable, type, tostring, pairs, ipairs, error, select
local find, gsub, sub = string.find, string.gsub, string.sub
local current = S.current

local genuine = setmetatable({}, { __mode = "k" }) -- actor/scope/policy objects made here -> kind
local strict = host.strict()

-- matching ---------------------------------------------------------------------------------------
local function glob_to_pattern(p)
    local escaped = gsub(p, "[%^%$%(%)%%%.%[%]%+%-%?]", "%%%0")
    return "^" .. gsub(escaped, "%*", ".*") .. "$"
end

local function matcher(patterns)
    local exact, globs = {}, {}
    for _, p in ipairs(patterns) do
        if p == "*" then return function() return true end end
        if find(p, "*", 1, true) then globs[#globs + 1] = glob_to_pattern(p) else exact[p] = true end
    end
    local n = #globs
    if n == 0 then return function(v) return exact[v] == true end end
    return function(v)
        if exact[v] then return true end
        for i = 1, n do if find(v, globs[i]) then return true end end
        return false
    end
end

local function field(path, actor, action, resource, meta)
    if path == "actor.id" then return actor and actor._id end
    if path == "action" then return action end
    if path == "resource" then return resource end
    local node, rest
    if sub(path, 1, 11) == "actor.meta." then
        node, rest = actor and actor._meta, sub(path, 12)
    else
        node, rest = meta, sub(path, 6)
    end
    for part in rest:gmatch("[^.]+") do
        if type(node) ~= "table" then return nil end
        node = node[part]
    end
    return node
end

local function contains(list, v)
    if type(list) ~= "table" then return false end
    for _, x in ipairs(list) do if x == v then return true end end
    return false
end

local function comparable(a, b)
    local ta, tb = type(a), type(b)
    return (ta == "number" and tb == "number") or (ta == "string" and tb == "string")
end

local compare = {
    exists = function(l) return l ~= nil end,
    nexists = function(l) return l == nil end,
    eq = function(l, r) return l == r end,
    ne = function(l, r) return l ~= r end,
    lt = function(l, r) return comparable(l, r) and l < r end,
    gt = function(l, r) return comparable(l, r) and l > r end,
    lte = function(l, r) return comparable(l, r) and l <= r end,
    gte = function(l, r) return comparable(l, r) and l >= r end,
    ["in"] = function(l, r) return contains(r, l) end,
    nin = function(l, r) return not contains(r, l) end,
    contains = function(l, r)
        if type(l) == "string" then return type(r) == "string" and find(l, r, 1, true) ~= nil end
        return contains(l, r)
    end,
    ncontains = function(l, r)
        if type(l) == "string" then return not (type(r) == "string" and find(l, r, 1, true) ~= nil) end
        return not contains(l, r)
    end,
    matches = function(l, r) return type(l) == "string" and host.regex(tostring(r), l) end,
    nmatches = function(l, r) return not (type(l) == "string" and host.regex(tostring(r), l)) end,
}

-- policies ---------------------------------------------------------------------------------------
local Policy = { __name = "security.policy", __metatable = false }
Policy.__index = Policy

local function compile_policy(d)
    local conds = {}
    for i, c in ipairs(d.conditions or {}) do
        conds[i] = { field = c.field, op = compare[c.operator], value = c.value, value_from = c.value_from }
    end
    local p = setmetatable({
        _id = d.id, _deny = d.effect == "deny", _act = matcher(d.actions), _res = matcher(d.resources),
        _conds = conds, _expr = d.expression, _groups = d.groups or {},
    }, Policy)
    p._plain = #conds == 0 and p._expr == nil -- decided by action and resource alone
    genuine[p] = "policy"
    return p
end

local function applies(p, actor, action, resource, meta)
    if not p._act(action) or not p._res(resource) then return false end
    if p._expr ~= nil then
        return host.expr(p._expr, actor and actor._id, actor and actor._meta, action, resource, meta) == true
    end
    for _, c in ipairs(p._conds) do
        local l = field(c.field, actor, action, resource, meta)
        local r = c.value
        if c.value_from ~= nil then r = field(c.value_from, actor, action, resource, meta) end
        if not c.op(l, r) then return false end
    end
    return true
end

function Policy:id() return self._id end
function Policy:evaluate(actor, action, resource, meta)
    if not applies(self, actor, tostring(action), tostring(resource), meta or {}) then return "undefined" end
    return self._deny and "deny" or "allow"
end

local policy_cache = {} -- id -> {policy, token}: recompiled when the entry changes

local function load_policy(id)
    local d, token, err = host.policy(id)
    if d == nil then return nil, token end
    local cached = policy_cache[id]
    if cached ~= nil and cached[2] == token then return cached[1], nil end
    local p = compile_policy(d)
    policy_cache[id] = { p, token }
    return p, nil
end

-- scopes -------------------------------------------------------------------------------------
local Scope = { __name = "security.scope", __metatable = false }
Scope.__index = Scope

local function new_scope(policies)
    local list, plain = {}, true
    for _, p in ipairs(policies) do
        list[#list + 1] = p
        if not p._plain then plain = false end
    end
    local s = setmetatable({ _policies = list, _plain = plain, _cache = plain and {} or nil, _cached = 0 }, Scope)
    genuine[s] = "scope"
    return s
end

local CACHE_MAX = 10000 -- decisions remembered per scope (then the cache starts over)

local function decide(scope, actor, action, resource, meta)
    local cache = scope._cache
    local key
    if cache ~= nil then
        key = action .. "\0" .. resource
        local hit = cache[key]
        if hit ~= nil then return hit end
        scope._cached = scope._cached + 1
        if scope._cached > CACHE_MAX then
            cache = {}
            scope._cache, scope._cached = cache, 1
        end
    end
    local allowed = false
    local policies = scope._policies
    for i = 1, #policies do
        local p = policies[i]
        if applies(p, actor, action, resource, meta) then
            if p._deny then
                if cache ~= nil then cache[key] = "deny" end
                return "deny"
            end
            allowed = true
        end
    end
    local d = allowed and "allow" or "undefined"
    if cache ~= nil then cache[key] = d end
    return d
end

function Scope:with(p)
    if genuine[p] ~= "policy" then error("scope:with: expected a policy from security.policy()", 2) end
    local list = {}
    for _, q in ipairs(self._policies) do if q._id ~= p._id then list[#list + 1] = q end end
    list[#list + 1] = p
    return new_scope(list)
end
function Scope:without(id)
    local list = {}
    for _, q in ipairs(self._policies) do if q._id ~= id then list[#list + 1] = q end end
    return new_scope(list)
end
function Scope:contains(id)
    for _, q in ipairs(self._policies) do if q._id == id then return true end end
    return false
end
function Scope:policies()
    local out = {}
    for i, q in ipairs(self._policies) do out[i] = q end
    return out
end
function Scope:evaluate(actor, action, resource, meta)
    return decide(self, actor, tostring(action), tostring(resource), meta or {})
end
function Scope:policy_ids()
    local out = {}
    for i, q in ipairs(self._policies) do out[i] = q._id end
    return out
end

-- actors ---------------------------------------------------------------------------------------
local Actor = { __name = "security.actor", __metatable = false }
Actor.__index = Actor
function Actor:id() return self._id end
function Actor:meta()
    local out = {}
    for k, v in pairs(self._meta) do out[k] = v end
    return out
end
function Actor:__tostring() return "actor(" .. tostring(self._id) .. ")" end

local function new_actor(id, meta)
    if type(id) ~= "string" or id == "" then error("security.new_actor: id must be a non-empty string", 2) end
    if meta ~= nil and type(meta) ~= "table" then error("security.new_actor: meta must be a table", 2) end
    local m = {}
    for k, v in pairs(meta or {}) do m[k] = v end
    local a = setmetatable({ _id = id, _meta = m }, Actor)
    genuine[a] = "actor"
    return a
end

-- the check ------------------------------------------------------------------------------------
local SEC = { strict = strict }

local function denied(action, resource, actor)
    local who = actor and (" for actor " .. tostring(actor._id)) or " (strict mode: no actor)"
    return errors._make("PERMISSION_DENIED",
        "permission denied: " .. tostring(action) .. " on " .. tostring(resource) .. who)
end

--- nil when the running code may do `action` on `resource`, else a PERMISSION_DENIED error.
function SEC.check(action, resource, meta)
    local t = S.running
    local actor, scope
    if t ~= nil then actor, scope = t.actor, t.scope end
    if actor == nil or scope == nil then
        if strict then return denied(action, resource, nil) end
        return nil
    end
    if decide(scope, actor, action, resource, meta or {}) == "allow" then return nil end
    return denied(action, resource, actor)
end

--- Whether checks can deny anything for the running code (an actor and a scope, or strict mode).
function SEC.active()
    if strict then return true end
    local t = current()
    return t ~= nil and t.actor ~= nil and t.scope ~= nil
end

function SEC.is_actor(v) return genuine[v] == "actor" end
function SEC.is_scope(v) return genuine[v] == "scope" end
function SEC.new_actor(id, meta) return new_actor(id, meta) end

--- A scope from policy ids (a token's); nil, error when one no longer exists.
function SEC.scope_of(ids)
    local list = {}
    for _, id in ipairs(ids) do
        local p, err = load_policy(id)
        if p == nil then return nil, err end
        list[#list + 1] = p
    end
    return new_scope(list), nil
end

-- the module -----------------------------------------------------------------------------------
local M = {}
function M.actor() local t = current() return t and t.actor or nil end
function M.scope() local t = current() return t and t.scope or nil end
function M.can(action, resource, meta) return SEC.check(action, resource, meta) == nil end
M.new_actor = new_actor
function M.new_scope(policies)
    local list = {}
    for i, p in ipairs(policies or {}) do
        if genuine[p] ~= "policy" then error("security.new_scope: item " .. i .. " is not a policy", 2) end
        list[#list + 1] = p
    end
    return new_scope(list)
end
function M.policy(id)
    if type(id) ~= "string" then return nil, errors._make("INVALID", "security.policy: expected a policy id") end
    return load_policy(id)
end
function M.named_scope(group)
    local ids, err = host.group(group)
    if ids == nil then return nil, err end
    return SEC.scope_of(ids)
end

-- token stores ---------------------------------------------------------------------------------
local TokenStore = { __name = "security.token_store", __metatable = false }
TokenStore.__index = TokenStore

function TokenStore:create(actor, scope, opts)
    local denied = SEC.check("security.token.create", self._id)
    if denied then return nil, denied end
    if genuine[actor] ~= "actor" then
        return nil, errors._make("INVALID", "token_store:create: expected an actor from security.new_actor")
    end
    if genuine[scope] ~= "scope" then
        return nil, errors._make("INVALID", "token_store:create: expected a scope (security.new_scope/named_scope)")
    end
    return host.token_create(self._id, actor._id, actor._meta, scope:policy_ids(), opts)
end

function TokenStore:validate(token)
    local denied = SEC.check("security.token.validate", self._id)
    if denied then return nil, nil, denied end
    if type(token) ~= "string" or token == "" then
        return nil, nil, errors._make("INVALID", "token_store:validate: expected a token string")
    end
    local id, meta, ids, err = host.token_validate(self._id, token)
    if id == nil then return nil, nil, meta end
    local scope, serr = SEC.scope_of(ids)
    if scope == nil then
        return nil, nil, errors._make("PERMISSION_DENIED", "token refers to a policy that no longer exists: " ..
            tostring(serr))
    end
    return new_actor(id, meta), scope, nil
end

function TokenStore:revoke(token)
    local denied = SEC.check("security.token.revoke", self._id)
    if denied then return nil, denied end
    return host.token_revoke(self._id, token)
end

function TokenStore:close() return true end

function M.token_store(id)
    if type(id) ~= "string" then return nil, errors._make("INVALID", "security.token_store: expected an id") end
    return setmetatable({ _id = id }, TokenStore), nil
end

SEC.module = M
return SEC
