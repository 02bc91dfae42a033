-- `sql.builder`: a query builder producing the SQL Masterminds/squirrel produces (what Wippy uses),
-- byte for byte: SELECT/INSERT/UPDATE/DELETE builders, conditions (expr, eq, not_eq, lt, lte, gt,
-- gte, like, not_like, and_, or_) and placeholder formats (question, dollar, at, colon).
--
-- Builders are immutable: every method returns a new builder. Maps ({col = value}) are rendered
-- with their keys sorted; a value that is an array becomes `col IN (?,?)` (NOT IN for not_eq;
-- an empty one `(1=0)`), sql.NULL `col IS NULL`. SQL is built with `?`; the placeholder format
-- renumbers them at the end (`??` stands for a literal `?` there).
-- Arguments keep sql.NULL for NULL (so `#args` counts every placeholder) and sql.as.binary values
-- as they are (so they bind as BLOBs); other sql.as.* values are unwrapped.
--
-- Loaded with (errors); returns make(deps) where deps = {NULL, typed (value -> {kind, v} | nil),
-- runner (r -> db type | nil), run (r, sql, args, n, fetch) -> result, err}; make returns the
-- builder module table.

local errors = ...
local type, setmetatable, tostring, ipairs, pairs, error, select, next =
    type, setmetatable, tostring, ipairs, pairs, error, select, next
local find, sub, concat, sort, floor, ceil = string.find, string.sub, table.concat, table.sort, math.floor, math.ceil
local tointeger = math.tointeger

return function(deps)
    local NULL, typed, runner_type, run = deps.NULL, deps.typed, deps.runner, deps.run
    local D = setmetatable({}, { __mode = "k" }) -- builder / condition -> its private data
    local B = {}

    local function invalid(msg) return errors._make("INVALID", msg, false) end

    -- placeholder formats ------------------------------------------------------------------
    local function format(name, prefix)
        return setmetatable({}, { __name = "sql.PlaceholderFormat", __metatable = false,
            __tostring = function() return "sql.builder." .. name end, __index = { _prefix = prefix } })
    end
    local QUESTION, DOLLAR = format("question", nil), format("dollar", "$")
    local FORMATS = { [QUESTION] = true, [DOLLAR] = true }
    B.question, B.dollar = QUESTION, DOLLAR
    B.at, B.colon = format("at", "@p"), format("colon", ":")
    FORMATS[B.at], FORMATS[B.colon] = true, true
    B.default_placeholder = QUESTION

    local function renumber(sql, prefix)
        if prefix == nil then return sql end
        local out, n, pos = {}, 0, 1
        while true do
            local p = find(sql, "?", pos, true)
            if not p then break end
            if sub(sql, p + 1, p + 1) == "?" then -- escaped: `??` is a literal `?`
                out[#out + 1] = sub(sql, pos, p)
                pos = p + 2
            else
                n = n + 1
                out[#out + 1] = sub(sql, pos, p - 1) .. prefix .. n
                pos = p + 1
            end
        end
        out[#out + 1] = sub(sql, pos)
        return concat(out)
    end

    -- values -------------------------------------------------------------------------------
    local function is_sqlizer(v) local d = D[v]; return d ~= nil and d.render ~= nil end

    -- a bind value: sql.NULL for nil/NULL, sql.as.* unwrapped (binary kept), plain values as they are
    local function value(v, what, level)
        local t = type(v)
        if t == "string" or t == "number" or t == "boolean" then return v end
        if v == nil or v == NULL then return NULL end
        local tv = typed(v)
        if tv ~= nil then
            if tv[1] == "null" then return NULL end
            if tv[1] == "binary" then return v end
            return tv[2]
        end
        error(what .. ": a " .. t .. " is not a SQL value (strings, numbers, booleans, sql.NULL, sql.as.*)",
              level or 3)
    end

    local function extend(dst, src) for i = 1, #src do dst[#dst + 1] = src[i] end end

    -- parts: {sql, args} or a condition/builder (rendered with `?`)
    local function render(p)
        local d = D[p]
        if d ~= nil then return d.render(d) end
        return p.sql, p.args
    end

    -- squirrel's appendToSql: empty parts are skipped, but the separator goes by position
    local function append(buf, parts, sep, args)
        for i = 1, #parts do
            local s, a = render(parts[i])
            if s == nil then return a end
            if #s > 0 then
                if i > 1 then buf[#buf + 1] = sep end
                buf[#buf + 1] = s
                extend(args, a)
            end
        end
        return nil
    end

    local function copy(d)
        local n = {}
        for k, v in pairs(d) do n[k] = v end
        return n
    end

    local function with(list, item)
        local n = {}
        for i = 1, #list do n[i] = list[i] end
        n[#n + 1] = item
        return n
    end

    local function strings(what, first, ...)
        local out = {}
        for i = first, select("#", ...) do
            local s = select(i, ...)
            if type(s) ~= "string" then error(what .. ": argument " .. i .. " must be a string", 3) end
            out[#out + 1] = s
        end
        return out
    end

    local function expr_part(what, sql, ...)
        if type(sql) ~= "string" then error(what .. ": expected a SQL string", 3) end
        local args = {}
        for i = 1, select("#", ...) do args[i] = value((select(i, ...)), what, 4) end
        return { sql = sql, args = args }
    end

    local function count(what, n)
        if type(n) ~= "number" then error(what .. ": expected a number", 3) end
        n = n >= 0 and floor(n) or ceil(n)
        if n < 0 then n = 0 end
        return tostring(tointeger(n) or n)
    end

    local function args_text(args)
        local out = {}
        for i = 1, #args do
            local a = args[i]
            out[i] = a == NULL and "<nil>" or tostring(typed(a) and typed(a)[2] or a)
        end
        return "[" .. concat(out, " ") .. "]"
    end

    -- conditions ---------------------------------------------------------------------------
    local SQLIZER = { __name = "sql.Sqlizer", __metatable = false }
    SQLIZER.__index = SQLIZER

    local function sqlizer(render_fn, data)
        data = data or {}
        data.render = render_fn
        local s = setmetatable({}, SQLIZER)
        D[s] = data
        return s
    end

    function SQLIZER:to_sql()
        local d = D[self]
        if d == nil then error("sql.Sqlizer:to_sql: call it with a colon", 2) end
        local s, a = d.render(d)
        if s == nil then return nil, a end
        return s, a
    end
    SQLIZER.__tostring = function(self)
        local s, a = D[self].render(D[self])
        if s == nil then return "SQL Expression Error: " .. tostring(a) end
        return "SQL: " .. s .. " [Args: " .. args_text(a) .. "]"
    end

    local function sorted_map(what, m)
        if type(m) ~= "table" or m == NULL or typed(m) or D[m] then error(what .. ": expected a table", 3) end
        local keys = {}
        for k in pairs(m) do if type(k) == "string" then keys[#keys + 1] = k end end
        sort(keys)
        local out = {}
        for i, k in ipairs(keys) do
            local v = m[k]
            if type(v) == "table" and v ~= NULL and typed(v) == nil then
                if D[v] then error(what .. ": the value of " .. k .. " is an expression, not a value", 3) end
                local list = {}
                for j = 1, #v do list[j] = value(v[j], what, 4) end
                out[i] = { k, list, true }
            else
                out[i] = { k, value(v, what, 4), false }
            end
        end
        return out
    end

    local function placeholders(n)
        local p = {}
        for i = 1, n do p[i] = "?" end
        return concat(p, ",")
    end

    local function eq_render(d)
        local pairs_, neg = d.pairs, d.neg
        if #pairs_ == 0 then return "(1=1)", {} end
        local exprs, args = {}, {}
        for i, kv in ipairs(pairs_) do
            local k, v, list = kv[1], kv[2], kv[3]
            if list then
                if #v == 0 then
                    exprs[i] = neg and "(1=1)" or "(1=0)"
                else
                    exprs[i] = k .. (neg and " NOT IN (" or " IN (") .. placeholders(#v) .. ")"
                    extend(args, v)
                end
            elseif v == NULL then
                exprs[i] = k .. (neg and " IS NOT NULL" or " IS NULL")
            else
                exprs[i] = k .. (neg and " <> ?" or " = ?")
                args[#args + 1] = v
            end
        end
        return concat(exprs, " AND "), args
    end

    local function cmp_render(d)
        local exprs, args = {}, {}
        for i, kv in ipairs(d.pairs) do
            if kv[3] then return nil, invalid(d.list_err) end
            if kv[2] == NULL then return nil, invalid(d.null_err) end
            exprs[i] = kv[1] .. " " .. d.op .. " ?"
            args[#args + 1] = kv[2]
        end
        return concat(exprs, " AND "), args
    end

    local function eq_of(m, neg, what) return sqlizer(eq_render, { pairs = sorted_map(what, m), neg = neg }) end
    B.eq = function(m) return eq_of(m, false, "sql.builder.eq") end
    B.not_eq = function(m) return eq_of(m, true, "sql.builder.not_eq") end
    local ORDER_ERR = { "cannot use array or slice with less than or greater than operators",
                        "cannot use null with less than or greater than operators" }
    local LIKE_ERR = { "cannot use array or slice with like operators", "cannot use null with like operators" }
    for name, spec in pairs({ lt = { "<", ORDER_ERR }, lte = { "<=", ORDER_ERR }, gt = { ">", ORDER_ERR },
                              gte = { ">=", ORDER_ERR }, like = { "LIKE", LIKE_ERR },
                              not_like = { "NOT LIKE", LIKE_ERR } }) do
        B[name] = function(m)
            return sqlizer(cmp_render, { pairs = sorted_map("sql.builder." .. name, m), op = spec[1],
                                         list_err = spec[2][1], null_err = spec[2][2] })
        end
    end

    local function conj_render(d)
        if #d.parts == 0 then return d.default, {} end
        local out, args = {}, {}
        for _, p in ipairs(d.parts) do
            local s, a = render(p)
            if s == nil then return nil, a end
            if s ~= "" then
                out[#out + 1] = s
                extend(args, a)
            end
        end
        if #out == 0 then return "", args end
        return "(" .. concat(out, d.sep) .. ")", args
    end

    local function conj(what, list, sep, default)
        if type(list) ~= "table" or D[list] then error(what .. ": expected a table of conditions", 3) end
        local parts = {}
        for i = 1, #list do
            local c = list[i]
            if is_sqlizer(c) then
                parts[i] = c
            elseif type(c) == "table" and c ~= NULL and not typed(c) and D[c] == nil then
                parts[i] = eq_of(c, false, what)
            else
                error(what .. ": condition " .. i .. " must be a condition or a {column = value} table", 3)
            end
        end
        return sqlizer(conj_render, { parts = parts, sep = sep, default = default })
    end
    B.and_ = function(list) return conj("sql.builder.and_", list, " AND ", "(1=1)") end
    B.or_ = function(list) return conj("sql.builder.or_", list, " OR ", "(1=0)") end

    -- squirrel's Expr: `?` with an expression argument is replaced by its SQL
    local function expr_render(d)
        local sql, raw = d.sql, d.args
        local nested = false
        for i = 1, #raw do if D[raw[i]] then nested = true break end end
        if not nested then return sql, raw end
        local out, args, ai, pos = {}, {}, 1, 1
        while ai <= #raw do
            local p = find(sql, "?", pos, true)
            if not p then break end
            if sub(sql, p + 1, p + 1) == "?" then
                out[#out + 1] = sub(sql, pos, p + 1)
                pos = p + 2
            else
                local a = raw[ai]
                if D[a] then
                    local s, sa = render(a)
                    if s == nil then return nil, sa end
                    out[#out + 1] = sub(sql, pos, p - 1) .. s
                    extend(args, sa)
                else
                    out[#out + 1] = sub(sql, pos, p)
                    args[#args + 1] = a
                end
                ai = ai + 1
                pos = p + 1
            end
        end
        out[#out + 1] = sub(sql, pos)
        for i = ai, #raw do args[#args + 1] = raw[i] end
        return concat(out), args
    end

    function B.expr(sql, ...)
        if type(sql) ~= "string" then error("sql.builder.expr: expected a SQL string", 2) end
        local args = {}
        for i = 1, select("#", ...) do
            local a = select(i, ...)
            args[i] = D[a] and a or value(a, "sql.builder.expr", 3)
        end
        return sqlizer(expr_render, { sql = sql, args = args })
    end

    local function condition(what, pred, ...)
        local t = type(pred)
        if t == "string" then
            if pred == "" then return nil end
            return expr_part(what, pred, ...)
        end
        if is_sqlizer(pred) then return pred end
        if t == "table" and pred ~= NULL and not typed(pred) and D[pred] == nil then
            return eq_of(pred, false, what)
        end
        error(what .. ": expected a SQL string, a {column = value} table or a condition", 3)
    end

    -- builders ------------------------------------------------------------------------------
    local function builder_class(name)
        local C = { __name = "sql." .. name, __metatable = false }
        C.__index = C
        C.__tostring = function(self)
            local s, a = D[self].render(D[self])
            if s == nil then return name .. " Error: " .. tostring(a) end
            return name .. ": " .. renumber(s, D[self].fmt._prefix) .. " [Args: " .. args_text(a) .. "]"
        end
        return C
    end

    local function wrap(C, d)
        local b = setmetatable({}, C)
        D[b] = d
        return b
    end

    local function data(self, C, what)
        local d = D[self]
        if d == nil or d.class ~= C then error(what .. ": call it with a colon on a builder", 3) end
        return copy(d)
    end

    local function common(C, name)
        function C:placeholder_format(f)
            local d = data(self, C, name .. ":placeholder_format")
            if not FORMATS[f] then error(name .. ":placeholder_format: expected sql.builder.question, dollar, at or colon", 2) end
            d.fmt = f
            return wrap(C, d)
        end
        function C:to_sql()
            local d = D[self]
            if d == nil then error(name .. ":to_sql: call it with a colon", 2) end
            local s, a = d.render(d)
            if s == nil then return nil, a end
            return renumber(s, d.fmt._prefix), a
        end
        function C:suffix(sql, ...)
            local d = data(self, C, name .. ":suffix")
            d.suffixes = with(d.suffixes, expr_part(name .. ":suffix", sql, ...))
            return wrap(C, d)
        end
        function C:run_with(r)
            local d = D[self]
            if d == nil then error(name .. ":run_with: call it with a colon", 2) end
            local kind = runner_type(r)
            if kind == nil then error(name .. ":run_with: expected a database or a transaction", 2) end
            local s, a = d.render(d)
            if s == nil then return nil, a end
            -- Wippy renders for Postgres with $n whatever format was chosen
            local sql = renumber(s, kind == "postgres" and "$" or d.fmt._prefix)
            local ex = {}
            function ex.query() return run(r, sql, a, #a, true) end
            function ex.exec() return run(r, sql, a, #a, false) end
            function ex.to_sql() return sql, a end
            return setmetatable(ex, { __name = "sql.QueryExecutor", __metatable = false,
                __index = function(t, k) -- executor:query() with a colon passes the executor itself
                    return nil
                end,
                __tostring = function() return "QueryExecutor: " .. sql .. " [Args: " .. #a .. "]" end })
        end
    end

    local function set_field(C, name, method, field, fn)
        C[method] = function(self, ...)
            local d = data(self, C, name .. ":" .. method)
            d[field] = fn(d, name .. ":" .. method, ...)
            return wrap(C, d)
        end
    end

    local function where_methods(C, name, with_having)
        set_field(C, name, "where", "wheres", function(d, what, pred, ...)
            local c = condition(what, pred, ...)
            return c and with(d.wheres, c) or d.wheres
        end)
        if with_having then
            set_field(C, name, "having", "havings", function(d, what, pred, ...)
                local c = condition(what, pred, ...)
                return c and with(d.havings, c) or d.havings
            end)
        end
        set_field(C, name, "limit", "limit", function(_d, what, n) return count(what, n) end)
        set_field(C, name, "offset", "offset", function(_d, what, n) return count(what, n) end)
    end

    local function list_field(C, name, method, field, wrap_item)
        C[method] = function(self, ...)
            local d = data(self, C, name .. ":" .. method)
            local items = strings(name .. ":" .. method, 1, ...)
            local n = {}
            for i = 1, #d[field] do n[i] = d[field][i] end
            for _, s in ipairs(items) do n[#n + 1] = wrap_item and { sql = s, args = {} } or s end
            d[field] = n
            return wrap(C, d)
        end
    end

    -- SELECT
    local SELECT = builder_class("SelectBuilder")
    -- LIMIT, OFFSET and suffixes, then the statement (or the first error met)
    local function tail(buf, d, args, err)
        if d.limit then buf[#buf + 1] = " LIMIT " .. d.limit end
        if d.offset then buf[#buf + 1] = " OFFSET " .. d.offset end
        if #d.suffixes > 0 then
            buf[#buf + 1] = " "
            err = err or append(buf, d.suffixes, " ", args)
        end
        if err then return nil, err end
        return concat(buf), args
    end

    local function select_render(d)
        if #d.columns == 0 then return nil, invalid("select statements must have at least one result column") end
        local buf, args = { "SELECT " }, {}
        if #d.options > 0 then buf[#buf + 1] = concat(d.options, " ") .. " " end
        local err = append(buf, d.columns, ", ", args)
        if d.from then
            buf[#buf + 1] = " FROM "
            err = err or append(buf, { d.from }, "", args)
        end
        if #d.joins > 0 then
            buf[#buf + 1] = " "
            err = err or append(buf, d.joins, " ", args)
        end
        if #d.wheres > 0 then
            buf[#buf + 1] = " WHERE "
            err = err or append(buf, d.wheres, " AND ", args)
        end
        if #d.groups > 0 then buf[#buf + 1] = " GROUP BY " .. concat(d.groups, ", ") end
        if #d.havings > 0 then
            buf[#buf + 1] = " HAVING "
            err = err or append(buf, d.havings, " AND ", args)
        end
        if #d.orders > 0 then
            buf[#buf + 1] = " ORDER BY "
            err = err or append(buf, d.orders, ", ", args)
        end
        return tail(buf, d, args, err)
    end

    function B.select(...)
        local cols = strings("sql.builder.select", 1, ...)
        for i, c in ipairs(cols) do cols[i] = { sql = c, args = {} } end
        return wrap(SELECT, { class = SELECT, render = select_render, fmt = QUESTION, columns = cols, options = {},
                              joins = {}, wheres = {}, groups = {}, havings = {}, orders = {}, suffixes = {} })
    end
    common(SELECT, "SelectBuilder")
    where_methods(SELECT, "SelectBuilder", true)
    list_field(SELECT, "SelectBuilder", "columns", "columns", true)
    list_field(SELECT, "SelectBuilder", "order_by", "orders", true)
    list_field(SELECT, "SelectBuilder", "group_by", "groups", false)
    set_field(SELECT, "SelectBuilder", "from", "from", function(_d, what, t)
        if type(t) ~= "string" then error(what .. ": expected a table name", 4) end
        return { sql = t, args = {} }
    end)
    function SELECT:distinct()
        local d = data(self, SELECT, "SelectBuilder:distinct")
        d.options = with(d.options, "DISTINCT")
        return wrap(SELECT, d)
    end
    for method, word in pairs({ join = "JOIN ", left_join = "LEFT JOIN ", right_join = "RIGHT JOIN ",
                                inner_join = "INNER JOIN " }) do
        set_field(SELECT, "SelectBuilder", method, "joins", function(d, what, j, ...)
            if type(j) ~= "string" then error(what .. ": expected a join clause string", 4) end
            return with(d.joins, expr_part(what, word .. j, ...))
        end)
    end

    -- INSERT
    local INSERT = builder_class("InsertBuilder")
    local function row_value(v, what)
        if D[v] then return v end
        return value(v, what, 5)
    end
    local function insert_render(d)
        if d.into == nil or d.into == "" then return nil, invalid("insert statements must specify a table") end
        if #d.rows == 0 and d.select == nil then
            return nil, invalid("insert statements must have at least one set of values or select clause")
        end
        local buf, args = {}, {}
        local err
        if #d.prefixes > 0 then
            err = append(buf, d.prefixes, " ", args)
            buf[#buf + 1] = " "
        end
        buf[#buf + 1] = "INSERT "
        if #d.options > 0 then buf[#buf + 1] = concat(d.options, " ") .. " " end
        buf[#buf + 1] = "INTO " .. d.into .. " "
        if #d.columns > 0 then buf[#buf + 1] = "(" .. concat(d.columns, ",") .. ") " end
        if d.select then
            local s, a = render(d.select)
            if s == nil then return nil, a end
            buf[#buf + 1] = s
            extend(args, a)
        else
            local rows = {}
            for r, row in ipairs(d.rows) do
                local vs = {}
                for i, v in ipairs(row) do
                    if D[v] then
                        local s, a = render(v)
                        if s == nil then return nil, a end
                        vs[i] = s
                        extend(args, a)
                    else
                        vs[i] = "?"
                        args[#args + 1] = v
                    end
                end
                rows[r] = "(" .. concat(vs, ",") .. ")"
            end
            buf[#buf + 1] = "VALUES " .. concat(rows, ",")
        end
        if #d.suffixes > 0 then
            buf[#buf + 1] = " "
            err = err or append(buf, d.suffixes, " ", args)
        end
        if err then return nil, err end
        return concat(buf), args
    end

    function B.insert(t)
        if t ~= nil and type(t) ~= "string" then error("sql.builder.insert: expected a table name", 2) end
        return wrap(INSERT, { class = INSERT, render = insert_render, fmt = QUESTION, into = t or "", columns = {},
                              rows = {}, prefixes = {}, suffixes = {}, options = {} })
    end
    common(INSERT, "InsertBuilder")
    list_field(INSERT, "InsertBuilder", "columns", "columns", false)
    list_field(INSERT, "InsertBuilder", "options", "options", false)
    set_field(INSERT, "InsertBuilder", "into", "into", function(_d, what, t)
        if type(t) ~= "string" then error(what .. ": expected a table name", 4) end
        return t
    end)
    set_field(INSERT, "InsertBuilder", "values", "rows", function(d, what, ...)
        local row = {}
        for i = 1, select("#", ...) do row[i] = row_value((select(i, ...)), what) end
        return with(d.rows, row)
    end)
    set_field(INSERT, "InsertBuilder", "prefix", "prefixes", function(d, what, sql, ...)
        return with(d.prefixes, expr_part(what, sql, ...))
    end)
    set_field(INSERT, "InsertBuilder", "select", "select", function(_d, what, q)
        local qd = D[q]
        if qd == nil or qd.class ~= SELECT then error(what .. ": expected a select builder", 4) end
        return q
    end)
    function INSERT:set_map(m)
        local d = data(self, INSERT, "InsertBuilder:set_map")
        local cols, row = {}, {}
        for i, kv in ipairs(sorted_map("InsertBuilder:set_map", m)) do
            if kv[3] then error("InsertBuilder:set_map: the value of " .. kv[1] .. " is a table", 2) end
            cols[i], row[i] = kv[1], kv[2]
        end
        d.columns, d.rows = cols, { row }
        return wrap(INSERT, d)
    end

    -- UPDATE
    local UPDATE = builder_class("UpdateBuilder")
    -- WHERE, ORDER BY, LIMIT, OFFSET and suffixes of an UPDATE or DELETE, then the statement
    local function finish(buf, d, args, err)
        if #d.wheres > 0 then
            buf[#buf + 1] = " WHERE "
            err = err or append(buf, d.wheres, " AND ", args)
        end
        if #d.orders > 0 then buf[#buf + 1] = " ORDER BY " .. concat(d.orders, ", ") end
        return tail(buf, d, args, err)
    end

    local function update_render(d)
        if d.table == nil or d.table == "" then return nil, invalid("update statements must specify a table") end
        if #d.sets == 0 then return nil, invalid("update statements must have at least one Set clause") end
        local buf, args = { "UPDATE " .. d.table .. " SET " }, {}
        local sets = {}
        for i, sc in ipairs(d.sets) do
            local v = sc[2]
            local vd = D[v]
            if vd then
                local s, a = render(v)
                if s == nil then return nil, a end
                sets[i] = sc[1] .. " = " .. (vd.class == SELECT and "(" .. s .. ")" or s)
                extend(args, a)
            else
                sets[i] = sc[1] .. " = ?"
                args[#args + 1] = v
            end
        end
        buf[#buf + 1] = concat(sets, ", ")
        local err
        if d.from then
            buf[#buf + 1] = " FROM "
            err = append(buf, { d.from }, "", args)
        end
        return finish(buf, d, args, err)
    end

    function B.update(t)
        if t ~= nil and type(t) ~= "string" then error("sql.builder.update: expected a table name", 2) end
        return wrap(UPDATE, { class = UPDATE, render = update_render, fmt = QUESTION, table = t or "", sets = {},
                              wheres = {}, orders = {}, suffixes = {} })
    end
    common(UPDATE, "UpdateBuilder")
    where_methods(UPDATE, "UpdateBuilder", false)
    list_field(UPDATE, "UpdateBuilder", "order_by", "orders", false)
    set_field(UPDATE, "UpdateBuilder", "table", "table", function(_d, what, t)
        if type(t) ~= "string" then error(what .. ": expected a table name", 4) end
        return t
    end)
    set_field(UPDATE, "UpdateBuilder", "set", "sets", function(d, what, col, v)
        if type(col) ~= "string" then error(what .. ": expected a column name", 4) end
        return with(d.sets, { col, row_value(v, what) })
    end)
    set_field(UPDATE, "UpdateBuilder", "set_map", "sets", function(d, what, m)
        local sets = d.sets
        for _, kv in ipairs(sorted_map(what, m)) do
            if kv[3] then error(what .. ": the value of " .. kv[1] .. " is a table", 4) end
            sets = with(sets, { kv[1], kv[2] })
        end
        return sets
    end)
    set_field(UPDATE, "UpdateBuilder", "from", "from", function(_d, what, t)
        if type(t) ~= "string" then error(what .. ": expected a table name", 4) end
        return { sql = t, args = {} }
    end)
    set_field(UPDATE, "UpdateBuilder", "from_select", "from", function(_d, what, q, alias)
        local qd = D[q]
        if qd == nil or qd.class ~= SELECT then error(what .. ": expected a select builder", 4) end
        if type(alias) ~= "string" then error(what .. ": expected an alias", 4) end
        return sqlizer(function()
            local s, a = render(q)
            if s == nil then return nil, a end
            return "(" .. s .. ") AS " .. alias, a
        end)
    end)

    -- DELETE
    local DELETE = builder_class("DeleteBuilder")
    local function delete_render(d)
        if d.from == nil or d.from == "" then return nil, invalid("delete statements must specify a From table") end
        local buf, args = { "DELETE FROM " .. d.from }, {}
        return finish(buf, d, args, nil)
    end

    function B.delete(t)
        if t ~= nil and type(t) ~= "string" then error("sql.builder.delete: expected a table name", 2) end
        return wrap(DELETE, { class = DELETE, render = delete_render, fmt = QUESTION, from = t or "", wheres = {},
                              orders = {}, suffixes = {} })
    end
    common(DELETE, "DeleteBuilder")
    where_methods(DELETE, "DeleteBuilder", false)
    list_field(DELETE, "DeleteBuilder", "order_by", "orders", false)
    set_field(DELETE, "DeleteBuilder", "from", "from", function(_d, what, t)
        if type(t) ~= "string" then error(what .. ": expected a table name", 4) end
        return t
    end)

    return B
end
