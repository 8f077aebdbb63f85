-- Headless test driver: `nvim --headless -u driver.lua`. It loads the plugin, opens a file and
-- runs one scenario from scenarios.lua as a coroutine. Keys go through nvim_input, so Neovim
-- handles them like typed keys in its main loop, with timers and LSP replies in between. At the
-- end the driver writes what it observed as JSON and quits.
--
-- Environment: TC_PLUGIN_DIR, TC_TEST_DIR (this folder), TC_SERVER_CMD (JSON list),
-- TC_FILE (file to edit), TC_RESULT (JSON output), TC_SCENARIO, TC_TIMEOUT_MS, TC_OPTIONS
-- (optional JSON merged into the setup() options).
local uv = vim.uv or vim.loop

local function env(name)
  local value = os.getenv(name)
  if value == nil or value == "" then
    error("driver.lua: environment variable " .. name .. " is not set", 0)
  end
  return value
end

vim.opt.runtimepath:prepend(env("TC_PLUGIN_DIR"))
package.path = env("TC_TEST_DIR") .. "/?.lua;" .. package.path
vim.opt.swapfile = false
vim.opt.shada = ""

local result = {
  scenario = env("TC_SCENARIO"),
  nvim = tostring(vim.version().major) .. "." .. vim.version().minor .. "." .. vim.version().patch,
  log = {},
}
local finished = false

local function finish(error_message)
  if finished then
    return
  end
  finished = true
  result.error = error_message
  vim.fn.writefile({ vim.fn.json_encode(result) }, env("TC_RESULT"))
  vim.cmd("qa!")
end

-- Helpers handed to each scenario.
local t = { result = result }

function t.record(key, value)
  result[key] = value
end

function t.note(message)
  table.insert(result.log, string.format("%.3f %s", uv.hrtime() / 1e9, message))
end

--- Suspend the scenario until `predicate()` returns a truthy value, which is returned.
--- Raises when `timeout_ms` passes first.
function t.wait_until(description, predicate, timeout_ms)
  local co = coroutine.running()
  local deadline = uv.hrtime() + (timeout_ms or 10000) * 1e6
  local timer = uv.new_timer()
  timer:start(
    0,
    10,
    vim.schedule_wrap(function()
      if timer:is_closing() then
        return
      end
      local ok, value = pcall(predicate)
      if not ok or value or uv.hrtime() > deadline then
        timer:stop()
        timer:close()
        local resumed, err = coroutine.resume(co, ok, value)
        if not resumed then
          finish(debug.traceback(co, tostring(err)))
        end
      end
    end)
  )
  local ok, value = coroutine.yield()
  if not ok then
    error(value, 0)
  end
  if not value then
    error(string.format("timed out after %d ms waiting for %s", timeout_ms or 10000, description), 0)
  end
  return value
end

function t.sleep(ms)
  local start = uv.hrtime()
  t.wait_until("sleep", function()
    return uv.hrtime() - start >= ms * 1e6
  end, ms + 1000)
end

--- Type `keys` (key notation, e.g. "<Tab>") and let Neovim process them.
function t.input(keys)
  vim.api.nvim_input(keys)
  t.sleep(30)
end

function t.mode()
  return vim.api.nvim_get_mode().mode
end

function t.lines()
  return vim.api.nvim_buf_get_lines(0, 0, -1, false)
end

function t.text()
  return table.concat(t.lines(), "\n")
end

function t.cursor()
  local cursor = vim.api.nvim_win_get_cursor(0)
  return { cursor[1] - 1, cursor[2] }
end

--- Every extmark of namespace `name` in the current buffer, as plain tables for JSON.
function t.marks(name)
  local namespace = vim.api.nvim_get_namespaces()[name]
  if not namespace then
    return {}
  end
  local marks = {}
  for _, mark in ipairs(vim.api.nvim_buf_get_extmarks(0, namespace, 0, -1, { details = true })) do
    local details = mark[4]
    local virt_lines = {}
    for _, chunks in ipairs(details.virt_lines or {}) do
      virt_lines[#virt_lines + 1] = chunks
    end
    marks[#marks + 1] = {
      row = mark[2],
      col = mark[3],
      virt_text = details.virt_text or {},
      virt_text_pos = details.virt_text_pos,
      virt_lines = virt_lines,
    }
  end
  return marks
end

--- The suggestion as drawn: chunks in highlight group `hl` of the first extmark of namespace
--- `name`, the virt_text and each virtual line joined with newlines. nil when nothing is drawn.
function t.drawn_text(name, hl)
  local mark = t.marks(name)[1]
  if not mark then
    return nil
  end
  local function join(chunks)
    local parts = {}
    for _, chunk in ipairs(chunks) do
      if chunk[2] == hl then
        parts[#parts + 1] = chunk[1]
      end
    end
    return table.concat(parts)
  end
  local lines = { join(mark.virt_text) }
  for _, chunks in ipairs(mark.virt_lines) do
    lines[#lines + 1] = join(chunks)
  end
  return table.concat(lines, "\n")
end

function t.client()
  local status = require("tiny_copilot").status()
  return status.client_id and vim.lsp.get_client_by_id(status.client_id) or nil
end

--- Requests of the client as a list of { id, method, type }.
function t.requests()
  local client = t.client()
  local list = {}
  for id, request in pairs(client and client.requests or {}) do
    list[#list + 1] = { id = id, method = request.method, type = request.type }
  end
  return list
end

function t.options()
  local options = {
    cmd = vim.fn.json_decode(env("TC_SERVER_CMD")),
    filetypes = { "python" },
    debounce_ms = 50,
  }
  local extra = os.getenv("TC_OPTIONS")
  if extra and extra ~= "" then
    options = vim.tbl_extend("force", options, vim.fn.json_decode(extra))
  end
  return options
end

-- Collect every LspRequest change of our client: 0.7 fires `User LspRequest` without data,
-- 0.12 fires the `LspRequest` event with the request in args.data.
local request_events = {}
local request_listeners = {}
t.request_events = request_events

--- Call `listener()` after every change of the client's requests (sent, cancelled, completed).
function t.on_request_change(listener)
  table.insert(request_listeners, listener)
end

local function watch_requests()
  local group = vim.api.nvim_create_augroup("tiny_copilot_test_driver", { clear = true })
  local function snapshot(args)
    local data = args and args.data
    if data and data.request then
      table.insert(request_events, { id = data.request_id, method = data.request.method, type = data.request.type })
    else
      for _, request in ipairs(t.requests()) do
        table.insert(request_events, request)
      end
    end
    for _, listener in ipairs(request_listeners) do
      listener()
    end
  end
  local ok = pcall(vim.api.nvim_create_autocmd, "LspRequest", { group = group, callback = snapshot })
  if not ok then
    vim.api.nvim_create_autocmd("User", { group = group, pattern = "LspRequest", callback = snapshot })
  end
end

local function start()
  local timeout_ms = tonumber(os.getenv("TC_TIMEOUT_MS") or "") or 20000
  vim.defer_fn(function()
    finish(string.format("scenario did not finish within %d ms; log: %s", timeout_ms, vim.inspect(result.log)))
  end, timeout_ms)

  watch_requests()
  local scenarios = require("scenarios")
  local scenario = scenarios[result.scenario]
  if not scenario then
    finish("unknown scenario " .. result.scenario)
    return
  end
  local co = coroutine.create(function()
    vim.cmd("edit " .. vim.fn.fnameescape(env("TC_FILE")))
    scenario(t)
  end)
  local ok, err = coroutine.resume(co)
  if not ok then
    finish(debug.traceback(co, tostring(err)))
    return
  end
  -- The scenario ends by returning; a dead coroutine with no error means success.
  local watcher = uv.new_timer()
  watcher:start(
    20,
    20,
    vim.schedule_wrap(function()
      if coroutine.status(co) == "dead" and not watcher:is_closing() then
        watcher:stop()
        watcher:close()
        finish(nil)
      end
    end)
  )
end

vim.schedule(start)
