-- Wippy runtime types (plain Lua 5.4).
--
-- Type values are what translated `type Name = ...` declarations evaluate to (see _dialect.py):
--   T(v)        validates v and returns it, or raises "Name: field a.b: expected X, got Y"
--   T:is(v)     returns v, nil  or  nil, message
--   T:kind()    "string", "integer", ..., "optional", "union", "intersection", "literal",
--               "array", "map", "record", "function", "any"
--   T:name()    the declared name ("User"), the primitive's name, or nil
--   T:inner() (optional), T:elem() (array), T:key() / T:val() (map), T:fields() (record),
--   T:variants() (union), T.field (a record's field type, when no method has that name)
--
-- M.install(env) adds what Wippy code sees as globals: the primitive casts and type values
-- `string(x)`, `integer(x)`, `number(x)`, `boolean(x)`, `integer:is(5)`, ..., `any`, `unknown`,
-- `never`, `typeof(v)`, and `table.create`, `table.freeze`, `table.isfrozen`.

local type, pairs, next, select, tostring, tonumber, error, pcall = type, pairs, next, select, tostring, tonumber, error, pcall
local rawget, setmetatable, getmetatable = rawget, setmetatable, getmetatable
local math_type, math_tointeger = math.type, math.tointeger
local str_find, str_format, str_sub, str_match = string.find, string.format, string.sub, string.match
local utf8_len = utf8.len
local concat = table.concat

local MAX_DEPTH = 100

local M = {}
local Type = {}     -- methods of every type value
local TypeMT = {}   -- metatable of every type value

local function is_type(v)
    return type(v) == "table" and getmetatable(v) == TypeMT
end
M.is_type = is_type

local function new(t)
    return setmetatable(t, TypeMT)
end

-- Follow refs, aliases and validator wrappers to the type that gives the value its shape.
local function resolve(t)
    for _ = 1, 64 do
        local step = rawget(t, "step")
        if step == nil then return t end
        local nxt = step(t)
        if nxt == nil then return t end
        t = nxt
    end
    return t
end

-- Text for error messages -------------------------------------------------------------------------

local function show_value(v)
    local tv = type(v)
    if tv == "string" then
        if #v > 24 then v = str_sub(v, 1, 21) .. "..." end
        return str_format("string %q", v)
    elseif tv == "number" then
        return (math_type(v) == "integer" and "integer " or "number ") .. tostring(v)
    elseif tv == "boolean" then
        return "boolean " .. tostring(v)
    end
    return tv
end

local describe
describe = function(t, depth)
    depth = depth or 0
    local name = rawget(t, "_name")
    if name then return name end
    if depth > 3 then return "..." end
    local d = rawget(t, "describe")
    return d and d(t, depth + 1) or rawget(t, "_kind") or "?"
end
M.describe = describe

local function key_path(k)
    if type(k) == "string" and str_match(k, "^[%a_][%w_]*$") then return "." .. k end
    if type(k) == "string" then return str_format("[%q]", k) end
    return "[" .. tostring(k) .. "]"
end

local function message(t, err, path)
    if path and path ~= "" then
        if str_sub(path, 1, 1) == "." then path = str_sub(path, 2) end
        err = "field " .. path .. ": " .. err
    end
    local name = rawget(t, "_name")
    if name and not rawget(t, "_builtin") then err = name .. ": " .. err end
    return err
end

-- Methods ------------------------------------------------------------------------------------------

function Type.is(self, v)
    local err, path = self.chk(self, v, 0)
    if err == nil then return v, nil end
    return nil, message(self, err, path)
end

function Type.kind(self)
    local r = resolve(self)
    local k = rawget(r, "kindfn")
    return k and k(r) or rawget(r, "_kind") or "any"
end

function Type.name(self)
    return rawget(self, "_name")
end

function Type.inner(self)
    return rawget(resolve(self), "inner")
end

function Type.elem(self)
    local r = resolve(self)
    return rawget(r, "_kind") == "array" and rawget(r, "inner") or nil
end

function Type.key(self)
    local r = resolve(self)
    return rawget(r, "k")
end

function Type.val(self)
    local r = resolve(self)
    return rawget(r, "v")
end

local function record_of(t)
    local r = resolve(t)
    local merge = rawget(r, "merged")
    if merge then r = merge(r) or r end
    return rawget(r, "_kind") == "record" and r or nil
end

function Type.fields(self)
    local r = record_of(self)
    local list = r and r.list or {}
    local i = 0
    return function()
        i = i + 1
        local f = list[i]
        if f then return f[1], f[2] end
    end
end

function Type.variants(self)
    local r = resolve(self)
    local parts = rawget(r, "_kind") == "union" and r.parts or {}
    local i = 0
    return function()
        i = i + 1
        local p = parts[i]
        if p then
            local lit = rawget(p, "literal")
            if lit ~= nil then return lit end
            return p
        end
    end
end

TypeMT.__index = function(self, k)
    local m = Type[k]
    if m ~= nil then return m end
    local r = record_of(self)
    if r then return r.byname[k] end
    return nil
end

TypeMT.__call = function(self, v)
    local cast = rawget(self, "cast")
    if cast then
        local r, cerr = cast(v)
        if cerr ~= nil then error(cerr, 2) end
        return r
    end
    local err, path = self.chk(self, v, 0)
    if err ~= nil then error(message(self, err, path), 2) end
    return v
end

TypeMT.__tostring = function(self)
    return describe(self)
end

-- Primitives ----------------------------------------------------------------------------------------

local function prim(name, test, cast)
    local want = "expected " .. name .. ", got "
    return new({
        _kind = name, _name = name, _builtin = true, cast = cast,
        chk = function(_, v)
            if test(v) then return nil end
            return want .. show_value(v)
        end,
    })
end

local function callable(v)
    if type(v) == "function" then return true end
    local mt = getmetatable(v)
    return type(mt) == "table" and rawget(mt, "__call") ~= nil
end

-- Casts return the converted value, or nil and the reason.
local function cannot(v, what)
    return nil, "cannot convert " .. show_value(v) .. " to " .. what
end

local function to_number(v)
    if type(v) == "number" then return v end
    local n = type(v) == "string" and tonumber(v) or nil
    if n == nil then return cannot(v, "number") end
    return n
end

local function to_integer(v)
    local n = v
    if type(n) == "string" then n = tonumber(n) end
    local i = type(n) == "number" and math_tointeger(n) or nil
    if i == nil then return cannot(v, "integer") end
    return i
end

local function to_boolean(v)
    if type(v) == "boolean" then return v end
    if v == "true" then return true end
    if v == "false" then return false end
    if type(v) == "number" then return v ~= 0 end
    return cannot(v, "boolean")
end

M.string = prim("string", function(v) return type(v) == "string" end, function(v) return tostring(v) end)
M.number = prim("number", function(v) return type(v) == "number" end, to_number)
M.integer = prim("integer", function(v)
    return math_type(v) == "integer" or (math_type(v) == "float" and math_tointeger(v) ~= nil)
end, to_integer)
M.boolean = prim("boolean", function(v) return type(v) == "boolean" end, to_boolean)
M["nil"] = prim("nil", function(v) return v == nil end)
M.table = prim("table", function(v) return type(v) == "table" end)
M["function"] = prim("function", callable)
M.thread = prim("thread", function(v) return type(v) == "thread" end)
M.userdata = prim("userdata", function(v) return type(v) == "userdata" end)
M.buffer = prim("buffer", function(v) return type(v) == "userdata" or type(v) == "string" end)
M.any = prim("any", function() return true end, function(v) return v end)
M.unknown = prim("unknown", function() return true end, function(v) return v end)
M.never = prim("never", function() return false end)

-- Constructors (what translated declarations call) --------------------------------------------------

function M.lit(value)
    local shown = type(value) == "string" and str_format("%q", value) or tostring(value)
    return new({
        _kind = "literal", literal = value,
        describe = function() return shown end,
        chk = function(_, v)
            if v == value then return nil end
            return "expected " .. shown .. ", got " .. show_value(v)
        end,
    })
end

function M.opt(inner)
    return new({
        _kind = "optional", inner = inner,
        describe = function(_, d) return describe(inner, d) .. "?" end,
        chk = function(_, v, d)
            if v == nil then return nil end
            return inner.chk(inner, v, d)
        end,
    })
end

local function join(parts, sep, d)
    local out = {}
    for i = 1, #parts do out[i] = describe(parts[i], d) end
    return concat(out, sep)
end

local TABLE_KINDS = {record = true, array = true, map = true, intersection = true, table = true}

-- For a table that matches no member: the one member that could describe tables, or the record
-- whose literal fields (a tagged union's discriminant) all match.
local function closest(parts, v)
    local tabular, tagged = {}, {}
    for i = 1, #parts do
        local r = resolve(parts[i])
        if TABLE_KINDS[Type.kind(r)] then
            tabular[#tabular + 1] = parts[i]
            local list, hits, misses = rawget(r, "list"), 0, 0
            for j = 1, list and #list or 0 do
                local lit = rawget(resolve(list[j][2]), "literal")
                if lit ~= nil then
                    if v[list[j][1]] == lit then hits = hits + 1 else misses = misses + 1 end
                end
            end
            if hits > 0 and misses == 0 then tagged[#tagged + 1] = parts[i] end
        end
    end
    if #tabular == 1 then return tabular[1] end
    if #tagged == 1 then return tagged[1] end
    return nil
end

function M.union(parts)
    return new({
        _kind = "union", parts = parts,
        describe = function(_, d) return join(parts, " | ", d) end,
        chk = function(_, v, d)
            for i = 1, #parts do
                local p = parts[i]
                if p.chk(p, v, d) == nil then return nil end
            end
            if type(v) == "table" then
                local p = closest(parts, v)
                if p then return p.chk(p, v, d) end
            end
            return "expected " .. join(parts, " | ", 1) .. ", got " .. show_value(v)
        end,
    })
end

local record

function M.inter(parts)
    local merged_cache
    local t = new({
        _kind = "intersection", parts = parts,
        describe = function(_, d) return join(parts, " & ", d) end,
    })
    -- `A & B & ...` of records acts as one record with all their fields (later ones win).
    t.merged = function()
        if merged_cache then return merged_cache end
        local list, index = {}, {}
        for i = 1, #parts do
            local r = record_of(parts[i])
            if r == nil then return nil end
            for j = 1, #r.list do
                local f = r.list[j]
                if index[f[1]] then list[index[f[1]]] = f else list[#list + 1] = f; index[f[1]] = #list end
            end
        end
        merged_cache = record(list)
        return merged_cache
    end
    t.kindfn = function(self)
        return self.merged() and "record" or "intersection"
    end
    t.chk = function(_, v, d)
        for i = 1, #parts do
            local p = parts[i]
            local err, path = p.chk(p, v, d)
            if err ~= nil then return err, path end
        end
        return nil
    end
    return t
end

function M.array(elem)
    return new({
        _kind = "array", inner = elem,
        describe = function(_, d) return "{" .. describe(elem, d) .. "}" end,
        chk = function(_, v, d)
            if type(v) ~= "table" then return "expected array, got " .. show_value(v) end
            if d > MAX_DEPTH then return "value nested too deeply (a cycle?)" end
            for i = 1, #v do
                local err, path = elem.chk(elem, v[i], d + 1)
                if err ~= nil then return err, "[" .. i .. "]" .. (path or "") end
            end
            return nil
        end,
    })
end

function M.map(k, val)
    return new({
        _kind = "map", k = k, v = val,
        describe = function(_, d) return "{[" .. describe(k, d) .. "]: " .. describe(val, d) .. "}" end,
        chk = function(_, v, d)
            if type(v) ~= "table" then return "expected table, got " .. show_value(v) end
            if d > MAX_DEPTH then return "value nested too deeply (a cycle?)" end
            for key, item in pairs(v) do
                local err = k.chk(k, key, d + 1)
                if err ~= nil then return "key " .. show_value(key) .. ": " .. err end
                local verr, path = val.chk(val, item, d + 1)
                if verr ~= nil then return verr, key_path(key) .. (path or "") end
            end
            return nil
        end,
    })
end

-- fields: { {name, type, optional?}, ... }; ik/iv: an indexer for the other keys
record = function(fields, ik, iv)
    local n, byname = #fields, {}
    for i = 1, n do byname[fields[i][1]] = fields[i][2] end
    return new({
        _kind = "record", list = fields, byname = byname, k = ik, v = iv,
        describe = function(_, d)
            local names = {}
            for i = 1, n < 4 and n or 3 do names[i] = fields[i][1] end
            if n > 3 then names[4] = "..." end
            return "{" .. concat(names, ", ") .. "}"
        end,
        chk = function(_, v, d)
            if type(v) ~= "table" then return "expected table, got " .. show_value(v) end
            if d > MAX_DEPTH then return "value nested too deeply (a cycle?)" end
            for i = 1, n do
                local f = fields[i]
                local item, ft = v[f[1]], f[2]
                if item ~= nil or not f[3] then
                    local err, path = ft.chk(ft, item, d + 1)
                    if err ~= nil then
                        if item == nil then err = "missing (" .. err .. ")" end
                        return err, key_path(f[1]) .. (path or "")
                    end
                end
            end
            if ik then
                for key, item in pairs(v) do
                    if byname[key] == nil then
                        local err = ik.chk(ik, key, d + 1)
                        if err ~= nil then return "key " .. show_value(key) .. ": " .. err end
                        local verr, path = iv.chk(iv, item, d + 1)
                        if verr ~= nil then return verr, key_path(key) .. (path or "") end
                    end
                end
            end
            return nil
        end,
    })
end
M.record = record

-- A declared name, resolved when a value is checked (forward and recursive references).
local function ref_step(t)
    return t.scope.types[t.ref]
end

-- Library tables that double as types once installed (`string`, `table`).
local library_types = setmetatable({}, {__mode = "k"})

-- A name from elsewhere (`time.Time`, a global): a type value if it holds one, else `any`.
local function ext_step(t)
    local ok, v = pcall(t.get)
    if ok and is_type(v) then return v end
    return ok and library_types[v] or M.any
end

local function delegate(t, v, d)
    local target = t.step(t)
    if target == nil then return "type " .. (rawget(t, "ref") or "?") .. " is not defined yet" end
    return target.chk(target, v, d)
end

function M.ext(get, label)
    return new({
        get = get, label = label, step = ext_step, chk = delegate,
        describe = function() return label end,
    })
end

-- Validators -----------------------------------------------------------------------------------------

local function length(v)
    if type(v) == "string" then return utf8_len(v) or #v end
    if type(v) == "table" then return #v end
    return nil
end

local RULES = {
    min = function(v, n)
        if type(v) ~= "number" then return "@min needs a number, got " .. show_value(v) end
        if v < n then return "must be >= " .. tostring(n) .. ", got " .. tostring(v) end
    end,
    max = function(v, n)
        if type(v) ~= "number" then return "@max needs a number, got " .. show_value(v) end
        if v > n then return "must be <= " .. tostring(n) .. ", got " .. tostring(v) end
    end,
    min_len = function(v, n)
        local len = length(v)
        if len == nil then return "@min_len needs a string or array, got " .. show_value(v) end
        if len < n then return "length must be >= " .. n .. ", got " .. len end
    end,
    max_len = function(v, n)
        local len = length(v)
        if len == nil then return "@max_len needs a string or array, got " .. show_value(v) end
        if len > n then return "length must be <= " .. n .. ", got " .. len end
    end,
    len = function(v, n)
        local len = length(v)
        if len == nil then return "@len needs a string or array, got " .. show_value(v) end
        if len ~= n then return "length must be " .. n .. ", got " .. len end
    end,
    pattern = function(v, p)
        if type(v) ~= "string" then return "@pattern needs a string, got " .. show_value(v) end
        if not str_find(v, p) then return str_format("must match pattern %q", p) end
    end,
    one_of = function(v, ...)
        for i = 1, select("#", ...) do
            if v == select(i, ...) then return nil end
        end
        local shown = {}
        for i = 1, select("#", ...) do
            local c = select(i, ...)
            shown[i] = type(c) == "string" and str_format("%q", c) or tostring(c)
        end
        return "must be one of " .. concat(shown, ", ") .. ", got " .. show_value(v)
    end,
}

local unpack = table.unpack

-- rules: { {"min", 0}, {"pattern", "^%a"}, ... }
function M.check(inner, rules)
    for i = 1, #rules do
        local rule = rules[i]
        if RULES[rule[1]] == nil then error("unknown validator @" .. tostring(rule[1]), 2) end
        if rule[1] == "pattern" then
            local ok, err = pcall(str_find, "", rule[2])
            if not ok then error("@pattern: " .. tostring(err), 2) end
        end
    end
    return new({
        inner = inner, step = function() return inner end,
        describe = function(_, d) return describe(inner, d) end,
        chk = function(_, v, d)
            local err, path = inner.chk(inner, v, d)
            if err ~= nil then return err, path end
            if v == nil then return nil end
            for i = 1, #rules do
                local rule = rules[i]
                local rerr = RULES[rule[1]](v, unpack(rule, 2))
                if rerr ~= nil then return rerr end
            end
            return nil
        end,
    })
end

-- Named types and the per-chunk scope -------------------------------------------------------------------

local Scope = {}
Scope.__index = Scope

function M.scope()
    return setmetatable({types = {}}, Scope)
end

function Scope:ref(name)
    return new({scope = self, ref = name, step = ref_step, chk = delegate, describe = function() return name end})
end

function Scope:define(name, t)
    if rawget(t, "_builtin") or rawget(t, "_name") then
        local target = t
        t = new({step = function() return target end, chk = function(_, v, d) return target.chk(target, v, d) end})
    end
    t._name = name
    self.types[name] = t
    return t
end

-- typeof(v): the type of a run-time value.
local TYPEOF = {
    ["nil"] = M["nil"], boolean = M.boolean, string = M.string, table = M.table,
    ["function"] = M["function"], thread = M.thread, userdata = M.userdata,
}

function M.typeof(v)
    if math_type(v) == "integer" then return M.integer end
    if type(v) == "number" then return M.number end
    return TYPEOF[type(v)]
end

-- table.create / table.freeze ----------------------------------------------------------------------------

local frozen = setmetatable({}, {__mode = "k"})

local function frozen_write()
    error("attempt to modify a frozen table", 2)
end

function M.freeze(t)
    if type(t) ~= "table" then
        error("bad argument #1 to 'freeze' (table expected, got " .. type(t) .. ")", 2)
    end
    if frozen[t] then return t end
    -- Writes to existing keys never reach __newindex, so the contents move to a hidden store and
    -- the table itself stays empty: raw access (next, rawget, rawlen) sees nothing.
    local store = {}
    for k, v in next, t do store[k] = v end
    for k in pairs(store) do t[k] = nil end
    local old = getmetatable(t)
    local mt = {}
    if type(old) == "table" then
        for k, v in pairs(old) do mt[k] = v end
        if old.__index ~= nil then setmetatable(store, {__index = old.__index}) end
    end
    mt.__index = store
    mt.__newindex = frozen_write
    mt.__len = function() return #store end
    mt.__pairs = function() return next, store, nil end
    mt.__metatable = old or false
    frozen[t] = store
    setmetatable(t, mt)
    return t
end

function M.isfrozen(t)
    return frozen[t] ~= nil
end

function M.create(narr, nrec)
    if narr ~= nil and type(narr) ~= "number" then
        error("bad argument #1 to 'create' (number expected, got " .. type(narr) .. ")", 2)
    end
    if nrec ~= nil and type(nrec) ~= "number" then
        error("bad argument #2 to 'create' (number expected, got " .. type(nrec) .. ")", 2)
    end
    return {}  -- Lua code cannot preallocate; the sizes are only hints
end

-- install(env) ---------------------------------------------------------------------------------------------

-- Type methods bound to a type value, for library tables that double as types (`string:is(x)`).
local function bound_methods(t)
    local out = {}
    for k, m in pairs(Type) do
        out[k] = function(_, ...) return m(t, ...) end
    end
    return out
end

local STRING_METHODS = bound_methods(M.string)
local TABLE_METHODS = bound_methods(M.table)

-- Put the Wippy extensions into a sandbox environment. `env.string` and `env.table` get a
-- metatable / new fields: pass copies, not the runtime's shared library tables.
function M.install(env)
    env.__wippy_types = M
    env.integer, env.number, env.boolean = M.integer, M.number, M.boolean
    env.any, env.unknown, env.never = M.any, M.unknown, M.never
    env.typeof = M.typeof
    local s = env.string
    if type(s) == "table" then
        library_types[s] = M.string
        setmetatable(s, {
            __call = function(_, v) return tostring(v) end,
            __index = STRING_METHODS,
        })
    end
    local tbl = env.table
    if type(tbl) == "table" then
        library_types[tbl] = M.table
        tbl.create, tbl.freeze, tbl.isfrozen = M.create, M.freeze, M.isfrozen
        setmetatable(tbl, {__index = TABLE_METHODS})
    end
    return env
end

return M
