-- A small JSON API over an in-memory store: list, create, read and delete notes.
local http = require("http")
local store = require("store")
local uuid = require("uuid")
local time = require("time")

local function fail(res, status, message)
    res:set_status(status)
    res:write_json({ error = message })
end

local function notes()
    return store.get("notes:store")
end

local function list()
    local res = http.response()
    local s, err = notes()
    if err then return fail(res, http.STATUS.INTERNAL_ERROR, tostring(err)) end
    local page, lerr = s:list({ prefix = "note:", limit = 100 })
    if lerr then return fail(res, http.STATUS.INTERNAL_ERROR, tostring(lerr)) end
    local out = {}
    for i, item in ipairs(page.items) do out[i] = item.value end
    res:write_json({ notes = out, count = #out })
end

local function create()
    local req, res = http.request(), http.response()
    local body, err = req:body_json()
    if err or type(body) ~= "table" or type(body.text) ~= "string" or body.text == "" then
        return fail(res, http.STATUS.BAD_REQUEST, "send JSON like {\"text\": \"...\"}")
    end
    local s, serr = notes()
    if serr then return fail(res, http.STATUS.INTERNAL_ERROR, tostring(serr)) end
    local id = uuid.v7()
    local note = { id = id, text = body.text, created = time.now():format(time.RFC3339) }
    local ok, werr = s:set("note:" .. id, note)
    if not ok then return fail(res, http.STATUS.INTERNAL_ERROR, tostring(werr)) end
    res:set_status(http.STATUS.CREATED)
    res:set_header("Location", "/api/notes/" .. id)
    res:write_json(note)
end

local function get()
    local req, res = http.request(), http.response()
    local s, err = notes()
    if err then return fail(res, http.STATUS.INTERNAL_ERROR, tostring(err)) end
    local note = s:get("note:" .. req:param("id"))
    if note == nil then return fail(res, http.STATUS.NOT_FOUND, "no such note") end
    res:write_json(note)
end

local function delete()
    local req, res = http.request(), http.response()
    local s, err = notes()
    if err then return fail(res, http.STATUS.INTERNAL_ERROR, tostring(err)) end
    if not s:delete("note:" .. req:param("id")) then return fail(res, http.STATUS.NOT_FOUND, "no such note") end
    res:set_status(http.STATUS.NO_CONTENT)
end

return { list = list, create = create, get = get, delete = delete }
