-- Ghost text drawn by the plugin with extmarks, for Neovim 0.7 to 0.11 (and for 0.12 with
-- `native = false`): debounced textDocument/inlineCompletion requests, one in flight per
-- buffer, and suggestions dropped as soon as the text they were computed for changes.
local compat = require("tiny_copilot.compat")
local suggestion = require("tiny_copilot.suggestion")

local M = {}

local api = vim.api
local uv = vim.uv or vim.loop
local METHOD = "textDocument/inlineCompletion"
local AUGROUP = "tiny_copilot_ghost"
-- LSP InlineCompletionTriggerKind values.
local TRIGGER_INVOKED = 1
local TRIGGER_AUTOMATIC = 2
-- LSP error code of a request that the client cancelled.
local REQUEST_CANCELLED = -32800

M.namespace = api.nvim_create_namespace("tiny_copilot_ghost")

-- Per-buffer state: { timer, request = { client_id, id }, current = { items, index, tick } }.
local buffers = {}
local settings = nil

--- Start drawing ghost text. `opts`: debounce_ms, highlight, and the callbacks client()
--- (the running client or nil) and is_enabled().
function M.start(opts)
  settings = opts
  compat.augroup(AUGROUP)
end

local function current_item(state)
  local current = state.current
  return current and current.items[current.index] or nil
end

local function clear_marks(bufnr)
  if api.nvim_buf_is_valid(bufnr) then
    api.nvim_buf_clear_namespace(bufnr, M.namespace, 0, -1)
  end
end

local function cancel_request(state)
  local request = state.request
  state.request = nil
  if not request then
    return
  end
  local client = vim.lsp.get_client_by_id(request.client_id)
  local pending = client and client.requests[request.id]
  if pending and pending.type == "pending" then
    compat.client_cancel_request(client, request.id)
  end
end

local function stop_timer(state)
  if state.timer then
    state.timer:stop()
  end
end

-- Forget the shown suggestion, the queued request and the one in flight.
local function reset(bufnr)
  local state = buffers[bufnr]
  if not state then
    return
  end
  stop_timer(state)
  cancel_request(state)
  state.current = nil
  clear_marks(bufnr)
end

-- Draw the current item: the first line over the cursor position (the rest of the real line is
-- drawn after it, so nothing is hidden), the other lines as virtual lines below.
local function render(bufnr)
  clear_marks(bufnr)
  local state = buffers[bufnr]
  local item = state and current_item(state)
  if not item then
    return
  end

  local line = api.nvim_buf_get_lines(bufnr, item.row, item.row + 1, false)[1] or ""
  local replaced = line:sub(item.col + 1)
  local kept = line:sub(item.end_col + 1)
  local lines = suggestion.lines(item.text)
  local hl = settings.highlight

  local first = { { lines[1], hl } }
  local virt_lines = {}
  if #lines == 1 then
    table.insert(first, { kept, "Normal" })
  else
    for index = 2, #lines do
      virt_lines[#virt_lines + 1] = { { lines[index], hl } }
    end
    table.insert(virt_lines[#virt_lines], { kept, "Normal" })
  end

  -- Overlay text has to cover every cell of the old rest of the line, or parts of it would
  -- show through after the ghost text ends.
  local shown_width = 0
  for _, chunk in ipairs(first) do
    shown_width = shown_width + vim.fn.strdisplaywidth(chunk[1])
  end
  local missing = vim.fn.strdisplaywidth(replaced) - shown_width
  if missing > 0 then
    table.insert(first, { string.rep(" ", missing), "Normal" })
  end

  local mark = {
    virt_text = first,
    virt_text_pos = "overlay",
    hl_mode = "combine",
  }
  if #virt_lines > 0 then
    mark.virt_lines = virt_lines
  end
  api.nvim_buf_set_extmark(bufnr, M.namespace, item.row, item.col, mark)
end

local function in_insert_mode(bufnr)
  return api.nvim_get_current_buf() == bufnr and api.nvim_get_mode().mode:sub(1, 1) == "i"
end

local function on_response(bufnr, request_id, snapshot, err, result, client)
  local state = buffers[bufnr]
  if not state or not state.request or state.request.id ~= request_id then
    return
  end
  state.request = nil
  if err then
    if err.code ~= REQUEST_CANCELLED then
      vim.notify("tiny-copilot: inline completion failed: " .. tostring(err.message), vim.log.levels.WARN)
    end
    return
  end

  -- The text or the cursor moved on while the server worked: the result no longer fits.
  if not in_insert_mode(bufnr) or api.nvim_buf_get_changedtick(bufnr) ~= snapshot.tick then
    return
  end
  local cursor = api.nvim_win_get_cursor(0)
  if cursor[1] - 1 ~= snapshot.row or cursor[2] ~= snapshot.col then
    return
  end

  local items = {}
  for _, item in ipairs(result and (result.items or result) or {}) do
    local shown = suggestion.from_item(item, snapshot.line, snapshot.row, snapshot.col, client)
    if shown then
      items[#items + 1] = shown
    end
  end
  if #items == 0 then
    return
  end
  state.current = { items = items, index = 1, tick = snapshot.tick }
  render(bufnr)
end

local function request(bufnr, trigger_kind)
  local state = buffers[bufnr]
  if not state or not settings.is_enabled() or not in_insert_mode(bufnr) then
    return
  end
  local client = settings.client()
  if not client or not client.initialized then
    return
  end
  cancel_request(state)

  local cursor = api.nvim_win_get_cursor(0)
  local snapshot = {
    tick = api.nvim_buf_get_changedtick(bufnr),
    row = cursor[1] - 1,
    col = cursor[2],
    line = api.nvim_get_current_line(),
  }
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(bufnr) },
    position = compat.cursor_position_params(0, client),
    context = { triggerKind = trigger_kind },
  }
  local request_id
  local ok, id = compat.client_request(client, METHOD, params, function(err, result)
    on_response(bufnr, request_id, snapshot, err, result, client)
  end, bufnr)
  if ok then
    request_id = id
    state.request = { client_id = client.id, id = id }
  end
end

local function schedule_request(bufnr)
  local state = buffers[bufnr]
  if not state.timer then
    state.timer = uv.new_timer()
  end
  state.timer:stop()
  state.timer:start(
    settings.debounce_ms,
    0,
    vim.schedule_wrap(function()
      request(bufnr, TRIGGER_AUTOMATIC)
    end)
  )
end

-- Any edit or cursor move in insert mode: keep the suggestion only if it still describes the
-- text (a partial accept updates it in place), else drop it and ask again after the debounce.
local function on_edit(bufnr)
  local state = buffers[bufnr]
  if not state or not settings.is_enabled() then
    return
  end
  local item = current_item(state)
  if item then
    local cursor = api.nvim_win_get_cursor(0)
    local unchanged = api.nvim_buf_get_changedtick(bufnr) == state.current.tick
    if unchanged and cursor[1] - 1 == item.row and cursor[2] == item.col then
      return
    end
  end
  reset(bufnr)
  schedule_request(bufnr)
end

--- Start watching `bufnr`; safe to call again for the same buffer.
function M.attach(bufnr)
  if buffers[bufnr] then
    return
  end
  buffers[bufnr] = {}
  local group = api.nvim_create_augroup(AUGROUP, { clear = false })
  -- With the popup menu visible, a <C-n> that inserts a match fires TextChangedP and neither of the others.
  api.nvim_create_autocmd({ "InsertEnter", "TextChangedI", "TextChangedP", "CursorMovedI" }, {
    group = group,
    buffer = bufnr,
    desc = "tiny-copilot: request a suggestion after the debounce",
    callback = function()
      on_edit(bufnr)
    end,
  })
  api.nvim_create_autocmd({ "InsertLeave", "BufLeave" }, {
    group = group,
    buffer = bufnr,
    desc = "tiny-copilot: drop the suggestion and cancel its request",
    callback = function()
      reset(bufnr)
    end,
  })
  api.nvim_create_autocmd({ "BufUnload", "BufWipeout" }, {
    group = group,
    buffer = bufnr,
    desc = "tiny-copilot: forget the buffer",
    callback = function()
      M.detach(bufnr)
    end,
  })
end

function M.detach(bufnr)
  local state = buffers[bufnr]
  if not state then
    return
  end
  reset(bufnr)
  if state.timer and not state.timer:is_closing() then
    state.timer:close()
  end
  buffers[bufnr] = nil
  pcall(api.nvim_clear_autocmds, { group = AUGROUP, buffer = bufnr })
end

--- True when a suggestion is shown in `bufnr`.
function M.visible(bufnr)
  local state = buffers[bufnr]
  return state ~= nil and current_item(state) ~= nil
end

--- The shown suggestion as { text, row, col, end_col, index, count }, or nil.
function M.current(bufnr)
  local state = buffers[bufnr]
  local item = state and current_item(state)
  if not item then
    return nil
  end
  return {
    text = item.text,
    row = item.row,
    col = item.col,
    end_col = item.end_col,
    index = state.current.index,
    count = #state.current.items,
  }
end

--- Insert all of the suggestion (`part` "all") or its first word or line ("word", "line").
--- After a partial accept the rest stays shown. Returns false when nothing was shown.
function M.accept(bufnr, part)
  local state = buffers[bufnr]
  local item = state and current_item(state)
  if not item then
    return false
  end
  local text = item.text
  if part == "word" then
    text = suggestion.first_word(item.text)
  elseif part == "line" then
    text = suggestion.first_line(item.text)
  end
  local whole = text == item.text

  -- A whole accept also replaces what the item's range covers right of the cursor.
  local end_col = whole and item.end_col or item.col
  api.nvim_buf_set_text(bufnr, item.row, item.col, item.row, end_col, suggestion.lines(text))
  local row, col = suggestion.position_after(text, item.row, item.col)
  api.nvim_win_set_cursor(0, { row + 1, col })

  if whole then
    state.current = nil
    clear_marks(bufnr)
    return true
  end
  local replaced_bytes = item.end_col - item.col
  state.current = {
    items = { { text = item.text:sub(#text + 1), row = row, col = col, end_col = col + replaced_bytes } },
    index = 1,
    tick = api.nvim_buf_get_changedtick(bufnr),
  }
  render(bufnr)
  return true
end

--- Hide the suggestion and cancel its request. Returns false when nothing was shown.
function M.dismiss(bufnr)
  local shown = M.visible(bufnr)
  reset(bufnr)
  return shown
end

--- Request a suggestion now when insert mode is on in `bufnr` and none is shown.
function M.refresh(bufnr)
  local state = buffers[bufnr]
  if state and not state.current and not state.request then
    request(bufnr, TRIGGER_AUTOMATIC)
  end
end

--- Show the next of several suggestions, or request one now when none is shown.
function M.next(bufnr)
  local state = buffers[bufnr]
  if not state then
    return false
  end
  if not state.current then
    stop_timer(state)
    request(bufnr, TRIGGER_INVOKED)
    return true
  end
  state.current.index = state.current.index % #state.current.items + 1
  render(bufnr)
  return true
end

--- Number of requests this module has in flight (0 or 1 per buffer).
function M.pending_count()
  local count = 0
  for _, state in pairs(buffers) do
    if state.request then
      count = count + 1
    end
  end
  return count
end

--- Drop every suggestion, cancel all requests, close timers and remove the autocmds.
function M.stop()
  for bufnr, _ in pairs(buffers) do
    M.detach(bufnr)
  end
  pcall(api.nvim_del_augroup_by_name, AUGROUP)
  settings = nil
end

--- Called by :TinyCopilot enable|disable; disabling drops every suggestion and request.
--- Requests stop by themselves while is_enabled() is false.
function M.set_enabled(enabled)
  if enabled then
    return
  end
  for bufnr, _ in pairs(buffers) do
    reset(bufnr)
  end
end

return M
