-- The `sql` module: databases by entry id, transactions, prepared statements, the query builder.
--   sql.get(id) -> db, err                         (permission db.get on the id)
--   db:query(sql, params?) -> rows, err            rows: array of {column = value}; NULL is nil
--   db:execute(sql, params?) -> {last_insert_id, rows_affected}, err
--   db:prepare(sql) -> stmt (stmt:query/execute(params?), stmt:close())
--   db:begin{isolation, read_only}? -> tx (query/execute/prepare/commit/rollback/savepoint/
--       rollback_to/release/db_type); db:type(); db:stats(); db:release()
--   sql.NULL, sql.as.{int,float,text,binary,null}, sql.type.*, sql.isolation.*, sql.builder.*
-- Params: an array ({1, "a"}), or (ours, as some Wippy docs write it) the values themselves
-- (db:query(sql, 1, "a")). Placeholders are passed to the database as written.
-- Handles taken by a process (or a host call) and not released are released when it ends, and
-- its open transactions rolled back: the host runs `sweep` (see _mod_sql.py).
-- Loaded with (host bridge, errors, scheduler, security lib, builder maker, Raw); returns the
-- module table and sweep.

local B, errors, S, sec, make_builder, Raw = ...
local type, setmetatable, tostring, select, error, pairs, next =
    type, setmetatable, tostring, select, error, pairs, next
local unpack, yield, tointeger, gsub, find, char = table.unpack, coroutine.yield, math.tointeger, string.gsub,
    string.find, string.char
local utf8len, utf8char = utf8.len, utf8.char
local check, current, tasks, make = sec.check, S.current, S.tasks, errors._make

local function invalid(msg) return make("INVALID", msg, false) end

-- values -------------------------------------------------------------------------------------
-- sql.NULL and sql.as.* values are host objects (userdata, as in Wippy) that cross into Python as
-- they are; the databases bind them (NULL as NULL, a typed value as its value).
local NULL = B.NULL
local TV = setmetatable({}, { __mode = "k" }) -- typed value -> {kind, value}, for the builder

local WIDE = {}
for b = 128, 255 do WIDE[char(b)] = utf8char(b) end
local function wide(s) return (gsub(s, "[\128-\255]", WIDE)) end
local function raw(s) return Raw(wide(s)) end -- bytes that cross as bytes (a BLOB)

local function typed(kind, v)
    local t = B.typed(kind, kind == "binary" and wide(v) or v)
    TV[t] = { kind, v }
    return t
end

local function trunc(x) return x >= 0 and math.floor(x) or math.ceil(x) end
local as = {
    int = function(v) return typed("int", type(v) == "number" and (tointeger(trunc(v)) or 0) or 0) end,
    float = function(v) return typed("float", type(v) == "number" and v + 0.0 or 0.0) end,
    text = function(v)
        local t = type(v)
        return typed("text", (t == "string" or t == "number") and tostring(v) or "")
    end,
    binary = function(v) return typed("binary", type(v) == "string" and v or "") end,
    null = function() return NULL end,
}

-- parameters as call arguments: (args, n, binary?) or (nil, err). Strings that are not UTF-8 text
-- cross as Raw (bound as BLOBs); tables, functions and the like are refused.
local function convert(params, n)
    local out, bin = params, false
    for i = 1, n do
        local v = params[i]
        local t = type(v)
        if t == "string" then
            if not utf8len(v) then
                if out == params then out = { unpack(params, 1, n) } end
                out[i], bin = raw(v), true
            end
        elseif t ~= "number" and t ~= "boolean" and v ~= nil and v ~= NULL and TV[v] == nil then
            return nil, invalid("parameter " .. i .. " is a " .. t ..
                                "; parameters are strings, numbers, booleans, sql.NULL or sql.as.* values")
        end
    end
    return out, n, bin
end

local EMPTY = {}
local function params_of(params, ...)
    local extra = select("#", ...)
    if extra == 0 then
        if params == nil then return EMPTY, 0, false end
        if type(params) == "table" then return convert(params, #params) end
    end
    return convert({ params, ... }, extra + 1)
end

-- ownership: who a handle belongs to, for release when it ends ------------------------------
local live = {}            -- db / tx object -> root task (false: the host's lifetime)
local tx_root = {}         -- transaction token -> root task
local next_token = 0

local function root_of()
    local t = current()
    if t == nil then return false end
    local p = t.parent
    while p ~= nil do t, p = p, p.parent end
    return t
end

local function alive(root)
    return root == false or tasks[root.co] == root or (root.orphans or 0) > 0
end

-- objects -------------------------------------------------------------------------------------
local state = setmetatable({}, { __mode = "k" }) -- DB / Tx / Stmt -> private state
local DB = { __name = "sql.DB", __metatable = false }
DB.__index = DB
local TX = { __name = "sql.Transaction", __metatable = false }
TX.__index = TX
local STMT = { __name = "sql.Statement", __metatable = false }
STMT.__index = STMT

local function rows_of(flat, cols, n)
    local out = {}
    if n == 0 then return out end
    local nc, k = #cols, 0
    for r = 1, n do
        local row = {}
        for c = 1, nc do row[cols[c]] = flat[k + c] end
        k = k + nc
        out[r] = row
    end
    return out
end

local function wait_for_holder(holder, db)
    local mine = tx_root[holder]
    if mine ~= nil and mine == root_of() then
        return invalid("sql: " .. db .. " has one connection and a transaction this code began holds it; " ..
                       "run the statement on the transaction (tx:query/tx:execute) or commit first")
    end
    return nil
end

-- run a statement on a target (a database or a transaction state: t, q, x, bind): (rows | result) or
-- (nil, err). The bridge answers rows as (n, flat, columns), an execute as (last_insert_id,
-- rows_affected); or (nil, 1, pending): wait for it; (nil, 2, err); (nil, 3, holder): the
-- connection is held by that transaction (B.wait queues the statement, unless the transaction is
-- this code's own: it would wait forever).
local function settle(st, id, sql, args, n, bin, fetch, a, b, c)
    if a == nil then
        if b == 3 then
            local bad = wait_for_holder(c, id)
            if bad then return nil, bad end
            a, b, c = B.wait(st.t, sql, fetch, bin, unpack(args, 1, n))
        end
        if b == 1 then a, b, c = yield(c) end
        if a == nil then
            if b == 2 then return nil, c end
            return nil, b -- the host operation failed outright
        end
    end
    if fetch then return rows_of(b, c, a) end
    return { last_insert_id = a, rows_affected = b }
end

-- SQLite's fast entries, one per statement text and target (st.bind(sql) makes them): the text
-- crosses into Python once; a target keeps at most FAST_TEXTS of them
local FAST_TEXTS = 256
local function fast_of(st, sql)
    local fxs = st.fxs
    if st.nfx >= FAST_TEXTS then
        fxs = {}
        st.fxs, st.nfx = fxs, 0
    end
    local fx = st.bind(sql)
    fxs[sql] = fx
    st.nfx = st.nfx + 1
    return fx
end

local function run(st, id, sql, args, n, bin, fetch)
    if bin then
        return settle(st, id, sql, args, n, true, fetch, B.binary(st.t, fetch, sql, unpack(args, 1, n)))
    end
    return settle(st, id, sql, args, n, false, fetch, (fetch and st.q or st.x)(sql, unpack(args, 1, n)))
end

-- lupa raises the Python exception itself when a string argument is not UTF-8
local function undecodable(e)
    return type(e) == "userdata" and find(tostring(e), "codec can't decode", 1, true) ~= nil
end

-- db:execute / tx:execute. SQLite's fast entry takes the parameters as they are (the database
-- binds sql.NULL and sql.as.* values and refuses the rest); anything unusual takes the general way.
local function execute(st, id, tried, sql, params, ...)
    if type(sql) ~= "string" then return nil, invalid("execute: sql must be a string") end
    if st.bind ~= nil and not tried and type(params) == "table" and select("#", ...) == 0 then
        local ok, a, b = pcall(st.fxs[sql] or fast_of(st, sql), unpack(params, 1, #params))
        if ok then
            if a ~= nil then return { last_insert_id = a, rows_affected = b or 1 } end
        elseif not undecodable(a) then
            return nil, B.raised(a)
        end
    end
    local args, n, bin = params_of(params, ...)
    if args == nil then return nil, n end
    return run(st, id, sql, args, n, bin, false)
end

local function live_db(self, what)
    local st = state[self]
    if st == nil or st.kind ~= "db" then error("sql.DB:" .. what .. ": call it with a colon on a database", 3) end
    if st.released then return nil, invalid("sql.DB:" .. what .. ": the database handle was released") end
    return st
end

function DB:query(sql, params, ...)
    local st, bad = live_db(self, "query")
    if not st then return nil, bad end
    if type(sql) ~= "string" then return nil, invalid("db:query: sql must be a string") end
    local args, n, bin = params_of(params, ...)
    if args == nil then return nil, n end
    return run(st, st.id, sql, args, n, bin, true)
end

function DB:execute(sql, params, ...)
    local st, bad = live_db(self, "execute")
    if not st then return nil, bad end
    return execute(st, st.id, false, sql, params, ...)
end

function DB:type()
    local st, bad = live_db(self, "type")
    if not st then return nil, bad end
    return st.type, nil
end

function DB:stats()
    local st, bad = live_db(self, "stats")
    if not st then return nil, bad end
    return B.stats(st.t), nil
end

function DB:release()
    local st = state[self]
    if st == nil or st.kind ~= "db" then error("sql.DB:release: call it with a colon on a database", 2) end
    if not st.released then
        st.released = true
        live[self] = nil
        B.release(st.t)
    end
    return true, nil
end

-- a statement runs on its target (the database's or the transaction's state)
local function new_stmt(target, dbst, txst, sql)
    local s, a = B.prepare(target.t, sql)
    if s == 1 then s, a = yield(a) end
    if s ~= 0 then return nil, a end
    local stmt = setmetatable({}, STMT)
    state[stmt] = { kind = "stmt", target = target, db = dbst, txst = txst, sql = sql, closed = false }
    return stmt, nil
end

function DB:prepare(sql)
    local st, bad = live_db(self, "prepare")
    if not st then return nil, bad end
    if type(sql) ~= "string" then return nil, invalid("db:prepare: sql must be a string") end
    return new_stmt(st, st, nil, sql)
end

local ISOLATION = { default = true, read_uncommitted = true, read_committed = true, write_committed = true,
                    repeatable_read = true, serializable = true }

function DB:begin(opts)
    local st, bad = live_db(self, "begin")
    if not st then return nil, bad end
    local iso, ro = "default", false
    if opts ~= nil then
        if type(opts) ~= "table" then return nil, invalid("db:begin: options must be a table {isolation, read_only}") end
        if opts.isolation ~= nil then
            iso = opts.isolation
            if not ISOLATION[iso] then return nil, invalid("invalid isolation level: " .. tostring(iso)) end
        end
        ro = opts.read_only == true
    end
    next_token = next_token + 1
    local token = next_token
    local s, t, q, x, bind = B.begin(st.t, iso, ro, token)
    if s == 3 then
        bad = wait_for_holder(t, st.id)
        if bad then return nil, bad end
        s, t = B.begin_wait(st.t, iso, ro, token)
    end
    if s == 1 then s, t, q, x, bind = yield(t) end
    if s ~= 0 then return nil, t end
    local root = root_of()
    local tx = setmetatable({}, TX)
    state[tx] = { kind = "tx", db = st, t = t, q = q, x = x, bind = bind, fxs = bind and {} or false, nfx = 0,
                  active = true, token = token }
    tx_root[token] = root
    live[tx] = root
    B.track()
    return tx, nil
end

-- transactions --------------------------------------------------------------------------------
local function live_tx(self, what)
    local st = state[self]
    if st == nil or st.kind ~= "tx" then error("sql.Transaction:" .. what .. ": call it with a colon on a transaction", 3) end
    if not st.active then return nil, invalid("transaction is not active") end
    return st
end

local function ended(self, st)
    st.active = false
    live[self] = nil
    tx_root[st.token] = nil
end

function TX:query(sql, params, ...)
    local st, bad = live_tx(self, "query")
    if not st then return nil, bad end
    if type(sql) ~= "string" then return nil, invalid("tx:query: sql must be a string") end
    local args, n, bin = params_of(params, ...)
    if args == nil then return nil, n end
    return run(st, st.db.id, sql, args, n, bin, true)
end

function TX:execute(sql, params, ...)
    local st = state[self]
    local fxs = st and st.active and st.fxs
    if fxs and type(params) == "table" and type(sql) == "string" and select("#", ...) == 0 then
        -- the hot path (SQLite), written out: see `execute`
        local ok, a, b = pcall(fxs[sql] or fast_of(st, sql), unpack(params, 1, #params))
        if ok then
            if a ~= nil then return { last_insert_id = a, rows_affected = b or 1 } end
        elseif not undecodable(a) then
            return nil, B.raised(a)
        end
    end
    if st == nil or st.kind ~= "tx" then error("sql.Transaction:execute: call it with a colon on a transaction", 2) end
    if not st.active then return nil, invalid("transaction is not active") end
    return execute(st, st.db.id, fxs ~= nil and fxs ~= false, sql, params, ...)
end

function TX:prepare(sql)
    local st, bad = live_tx(self, "prepare")
    if not st then return nil, bad end
    if type(sql) ~= "string" then return nil, invalid("tx:prepare: sql must be a string") end
    return new_stmt(st, st.db, st, sql)
end

function TX:db_type()
    local st, bad = live_tx(self, "db_type")
    if not st then return nil, bad end
    return st.db.type, nil
end

local function finish(self, commit)
    local st, bad = live_tx(self, commit and "commit" or "rollback")
    if not st then return nil, bad end
    local s, a = B.finish(st.t, commit)
    if s == 1 then s, a = yield(a) end
    ended(self, st)
    if s ~= 0 then return nil, a end
    return true, nil
end
function TX:commit() return finish(self, true) end
function TX:rollback() return finish(self, false) end

local function savepoint(what, verb)
    return function(self, name)
        local st, bad = live_tx(self, what)
        if not st then return nil, bad end
        if name == nil or name == "" then return nil, invalid("savepoint name is required") end
        if type(name) ~= "string" or find(name, "[^%w_]") then
            return nil, invalid("savepoint name can only contain alphanumeric characters and underscores")
        end
        if st.db.type == "duckdb" then
            return nil, make("UNAVAILABLE", "tx:" .. what .. ": DuckDB has no savepoints", false)
        end
        local _, err = run(st, st.db.id, verb .. name, EMPTY, 0, false, false)
        if err then return nil, err end
        return true, nil
    end
end
TX.savepoint = savepoint("savepoint", "SAVEPOINT ")
TX.rollback_to = savepoint("rollback_to", "ROLLBACK TO SAVEPOINT ")
TX.release = savepoint("release", "RELEASE SAVEPOINT ")

-- prepared statements -------------------------------------------------------------------------
local function live_stmt(self, what)
    local st = state[self]
    if st == nil or st.kind ~= "stmt" then error("sql.Statement:" .. what .. ": call it with a colon on a statement", 3) end
    if st.closed then return nil, invalid("statement is closed") end
    if st.txst ~= nil and not st.txst.active then return nil, invalid("transaction is not active") end
    if st.txst == nil and st.db.released then return nil, invalid("the database handle was released") end
    return st
end

function STMT:query(params, ...)
    local st, bad = live_stmt(self, "query")
    if not st then return nil, bad end
    local args, n, bin = params_of(params, ...)
    if args == nil then return nil, n end
    return run(st.target, st.db.id, st.sql, args, n, bin, true)
end

function STMT:execute(params, ...)
    local st, bad = live_stmt(self, "execute")
    if not st then return nil, bad end
    return execute(st.target, st.db.id, false, st.sql, params, ...)
end

function STMT:close()
    local st = state[self]
    if st == nil or st.kind ~= "stmt" then error("sql.Statement:close: call it with a colon on a statement", 2) end
    if st.closed then return nil, invalid("statement is already closed") end
    st.closed = true
    return true, nil
end

-- the module ----------------------------------------------------------------------------------
local M = {
    NULL = NULL,
    as = as,
    type = { POSTGRES = "postgres", MYSQL = "mysql", SQLITE = "sqlite", DUCKDB = "duckdb", MSSQL = "mssql",
             ORACLE = "oracle", UNKNOWN = "unknown" },
    isolation = { DEFAULT = "default", READ_UNCOMMITTED = "read_uncommitted", READ_COMMITTED = "read_committed",
                  WRITE_COMMITTED = "write_committed", REPEATABLE_READ = "repeatable_read",
                  SERIALIZABLE = "serializable" },
}

function M.get(id)
    if type(id) ~= "string" then return nil, invalid("sql.get: expected a database id (a string)") end
    if id == "" then return nil, invalid("resource id is required") end
    local denied = check("db.get", id)
    if denied then return nil, denied end
    local s, t, kind, q, x, bind = B.open(id)
    if s ~= 0 then return nil, t end
    local db = setmetatable({}, DB)
    state[db] = { kind = "db", t = t, q = q, x = x, bind = bind, fxs = bind and {} or false, nfx = 0, id = id,
                  type = kind, released = false }
    live[db] = root_of()
    B.track()
    return db, nil
end

-- the builder runs on a DB or a Transaction
local function runner(r)
    local st = state[r]
    if st == nil then return nil end
    if st.kind == "db" then return st.type end
    if st.kind == "tx" then return st.db.type end
    return nil
end

local function run_built(r, sql, args, n, fetch)
    local st = state[r]
    local what = fetch and "query" or "execute"
    local target, bad, id
    if st.kind == "db" then
        target, bad = live_db(r, what)
        id = st.id
    else
        target, bad = live_tx(r, what)
        id = st.db.id
    end
    if not target then return nil, bad end
    if not fetch then return execute(target, id, false, sql, args) end
    local cargs, cn, bin = convert(args, n)
    if cargs == nil then return nil, cn end
    return run(target, id, sql, cargs, cn, bin, fetch)
end

M.builder = make_builder({ NULL = NULL, typed = function(v) return TV[v] end, runner = runner, run = run_built })

-- Release what tasks that have ended left behind; true while anything is still held.
local function sweep()
    for obj, root in pairs(live) do
        if not alive(root) then
            live[obj] = nil
            local st = state[obj]
            if st ~= nil and st.kind == "db" then
                st.released = true
                B.release(st.t)
            elseif st ~= nil and st.kind == "tx" and st.active then
                ended(obj, st)
                B.abandon(st.t)
            end
        end
    end
    return next(live) ~= nil
end

return M, sweep
