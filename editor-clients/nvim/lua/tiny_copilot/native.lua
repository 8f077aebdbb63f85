-- Suggestions through Neovim's built-in vim.lsp.inline_completion (0.12+). Neovim sends the
-- requests after a fixed 200 ms debounce and draws the ghost text. This module turns it on for
-- our buffers and adds what the built-in lacks: partial accepts, dismiss, a guard that cancels
-- requests its debounce timer sends after insert mode was left, hiding of suggestions that no
-- longer fit the typed text, and a request once the model has loaded.
local compat = require("tiny_copilot.compat")
local suggestion = require("tiny_copilot.suggestion")

local M = {}

local api = vim.api
local METHOD = "textDocument/inlineCompletion"
local AUGROUP = "tiny_copilot_native"
-- LSP InlineCompletionTriggerKind.Automatic.
local TRIGGER_AUTOMATIC = 2
-- Namespace in which vim.lsp.inline_completion draws its extmarks (0.12-dev).
local BUILTIN_NAMESPACE = "nvim.lsp.inline_completion"

local buffers = {}
local settings = nil

local function inline_completion()
  return require("vim.lsp.inline_completion")
end

local function builtin_namespace()
  return api.nvim_get_namespaces()[BUILTIN_NAMESPACE]
end

local function builtin_marks(bufnr)
  local namespace = builtin_namespace()
  if not namespace or not api.nvim_buf_is_valid(bufnr) then
    return {}
  end
  return api.nvim_buf_get_extmarks(bufnr, namespace, 0, -1, { details = true })
end

local function cancel_pending(bufnr)
  for _, client in ipairs(compat.get_clients()) do
    for id, request in pairs(client.requests) do
      if request.bufnr == bufnr and request.method == METHOD and request.type == "pending" then
        compat.client_cancel_request(client, id)
      end
    end
  end
end

-- The position of the request that returned each buffer's items without a range,
-- as { row, byte column }.
local inline_origins = {}

-- The built-in's state for `bufnr`, or nil. NOTE: `vim.lsp._capability` is private in the
-- 0.12-dev build, so a later Neovim may lack it. Stale items then stay until the next reply.
local function builtin_completor(bufnr)
  local ok, capability = pcall(require, "vim.lsp._capability")
  local class = ok and type(capability) == "table" and type(capability.all) == "table" and capability.all.inline_completion
  local active = type(class) == "table" and class.active
  return type(active) == "table" and active[bufnr] or nil
end

-- Whether `item` (the built-in's current item) still fits the text at the cursor (0-based row, byte column).
local function item_fits(item, bufnr, row, col)
  local start = item.range and item.range.start
  local origin = start and { start.row, start.col } or inline_origins[bufnr]
  if not origin or row ~= origin[1] or col < origin[2] then
    return false
  end
  if not start then
    return col == origin[2]  -- drawn inline at the cursor, so any move shifts it
  end
  local line = api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ""
  local typed = line:sub(origin[2] + 1, col)
  return type(item.insert_text) == "string" and item.insert_text:sub(1, #typed) == typed
end

-- Drop the built-in's current item when it no longer fits the text, so that it is not drawn again.
local function forget_stale_item(bufnr)
  local completor = buffers[bufnr] and builtin_completor(bufnr)
  local item = completor and completor.current
  -- Check the current window's buffer, not vim.fn.bufwinid(): with the buffer in two windows that
  -- returns the first one, which need not be the window being typed in.
  if not item or api.nvim_win_get_buf(0) ~= bufnr then
    return
  end
  local cursor = api.nvim_win_get_cursor(0)
  if not item_fits(item, bufnr, cursor[1] - 1, cursor[2]) then
    completor.current = nil
    local namespace = builtin_namespace()
    if namespace then
      api.nvim_buf_clear_namespace(bufnr, namespace, 0, -1)
    end
  end
end

-- Draw an item without a range at the cursor of the current window. The built-in draws it at the
-- cursor of vim.fn.bufwinid(), the first window on the buffer, so with the buffer in two windows the
-- text showed in the other one, at its cursor.
local function draw_at_cursor(bufnr)
  local completor = builtin_completor(bufnr)
  local item = completor and completor.current
  local namespace = builtin_namespace()
  local marks = builtin_marks(bufnr)
  if not item or item.range or type(item.insert_text) ~= "string" or not namespace or #marks ~= 1 then
    return
  end
  if api.nvim_win_get_buf(0) ~= bufnr or vim.fn.bufwinid(bufnr) == api.nvim_get_current_win() then
    return
  end
  local cursor = api.nvim_win_get_cursor(0)
  local row, col = cursor[1] - 1, cursor[2]
  local lines = vim.split(item.insert_text, "\n", { plain = true })
  local virt_lines = {}
  for index = 2, #lines do
    virt_lines[#virt_lines + 1] = { { lines[index], "ComplHint" } }
  end
  api.nvim_buf_clear_namespace(bufnr, namespace, 0, -1)
  api.nvim_buf_set_extmark(bufnr, namespace, row, col, {
    virt_text = { { lines[1], "ComplHint" } },
    virt_lines = virt_lines,
    virt_text_pos = "inline",
    hl_mode = "combine",
  })
end

--- Start using the built-in inline completion. `opts`: client() and is_enabled() callbacks.
function M.start(opts)
  settings = opts
  local group = compat.augroup(AUGROUP)

  -- The built-in debounce timer survives InsertLeave, so a request can still go out after
  -- insert mode ended, and the reply would then be drawn in normal mode. Cancel such requests.
  api.nvim_create_autocmd("LspRequest", {
    group = group,
    desc = "tiny-copilot: cancel inline completion requests sent outside insert mode",
    callback = function(args)
      local data = args.data or {}
      local request = data.request
      if not request or request.type ~= "pending" or request.method ~= METHOD then
        return
      end
      if not buffers[request.bufnr] or api.nvim_get_mode().mode:sub(1, 1) == "i" then
        return
      end
      vim.schedule(function()
        local client = vim.lsp.get_client_by_id(data.client_id)
        local current = client and client.requests[data.request_id]
        if current and current.type == "pending" then
          compat.client_cancel_request(client, data.request_id)
        end
      end)
    end,
  })

  -- The built-in draws its current item again after every cursor move in insert mode, and only
  -- its next reply, 200 ms or more later, replaces it. An item without a range is drawn whole at
  -- the new cursor, and one with a range keeps showing its rest after typed characters that differ
  -- from it: typing `x` at `for |line in data:` with `file ` showed `for xfile line in data:`.
  -- This autocmd is defined before the built-in's own, so it runs first and drops such an item.
  -- While the popup menu is visible, a <C-n> that inserts a match fires only TextChangedP, which
  -- the built-in also redraws on: `total = r|` with `read_file(path)` then read `total = returnile(path)`.
  api.nvim_create_autocmd({ "CursorMovedI", "TextChangedP" }, {
    group = group,
    desc = "tiny-copilot: hide a built-in suggestion that no longer fits the text",
    callback = function(args)
      forget_stale_item(args.buf)
    end,
  })
end

-- The built-in draws an item that has a range as an overlay starting at the range, which suits a
-- replacement. Our server sends an empty range for an insertion, so mid-line the overlay hid the
-- text after the cursor: `for |line in data:` with `file ` read `for file in data:` on screen, and
-- `print(|)` with `x` hid the `)`. Without a range the built-in draws the text inline at the
-- cursor, and accepting pastes it there. At a line end the overlay hides nothing, so those keep it.
-- Return the position of the dropped ranges as { row, byte column }, or nil when none was dropped.
local function drop_empty_midline_ranges(result, bufnr, encoding)
  local items = result and (result.items or result)
  if type(items) ~= "table" or not api.nvim_buf_is_valid(bufnr) then
    return nil
  end
  local origin = nil
  for _, item in ipairs(items) do
    local range = item.range
    local start, finish = range and range.start, range and range["end"]
    if start and start.line == finish.line and start.character == finish.character then
      local line = api.nvim_buf_get_lines(bufnr, start.line, start.line + 1, false)[1] or ""
      local ok, byte = pcall(vim.str_byteindex, line, encoding, start.character, false)
      if ok and line:sub(byte + 1):match("%S") then
        item.range = nil
        origin = { start.line, byte }
      end
    end
  end
  return origin
end


-- The built-in splits an item's text at "\n" only, so the "\r\n" line breaks that the server sends
-- for a 'fileformat' dos file showed as ^M and put a "\r" at the end of each inserted line.
local function normalize_newlines(result)
  local items = result and (result.items or result)
  if type(items) ~= "table" then
    return
  end
  for _, item in ipairs(items) do
    local insert_text = item.insertText
    if type(insert_text) == "string" then
      item.insertText = suggestion.normalize_newlines(insert_text)
    elseif type(insert_text) == "table" and type(insert_text.value) == "string" then
      insert_text.value = suggestion.normalize_newlines(insert_text.value)
    end
  end
end

local function is_current_document(params)
  local document = type(params) == "table" and params.textDocument
  if type(document) ~= "table" or type(document.uri) ~= "string" then
    return true
  end
  return document.uri == vim.uri_from_bufnr(api.nvim_get_current_buf())
end

-- Wrap our client's request once, so that the built-in's replies pass normalize_newlines,
-- drop_empty_midline_ranges, forget_stale_item and draw_at_cursor.
local wrapped_clients = setmetatable({}, { __mode = "k" })
local function wrap_requests(client)
  if not client or wrapped_clients[client] then
    return
  end
  wrapped_clients[client] = true
  local request = client.request
  client.request = function(self, method, params, handler, bufnr)
    -- NOTE: the built-in of Neovim 0.12-dev (fbb1caf) creates its InsertEnter and CursorMovedI
    -- autocmds without `buffer`, so each enabled buffer sends a request, with the current window's
    -- cursor, whenever the user types in any buffer. Only the current buffer's request is sent.
    if method == METHOD and not is_current_document(params) then
      return false, nil
    end
    if method == METHOD and handler then
      local inner = handler
      handler = function(err, result, ctx, ...)
        local target = (ctx and ctx.bufnr) or bufnr or 0
        target = target == 0 and api.nvim_get_current_buf() or target
        if type(result) == "table" then
          normalize_newlines(result)
          inline_origins[target] = drop_empty_midline_ranges(result, target, self.offset_encoding)
        end
        local returned = { inner(err, result, ctx, ...) }
        -- A reply to a request sent before the last keystrokes may not fit the text any more.
        forget_stale_item(target)
        draw_at_cursor(target)
        return unpack(returned)
      end
    end
    return request(self, method, params, handler, bufnr)
  end
end

--- Turn the built-in inline completion on for `bufnr`.
function M.attach(bufnr)
  buffers[bufnr] = true
  wrap_requests(settings.client())
  if settings.is_enabled() then
    inline_completion().enable(true, { bufnr = bufnr })
  end
end

function M.detach(bufnr)
  if not buffers[bufnr] then
    return
  end
  buffers[bufnr] = nil
  inline_origins[bufnr] = nil
  if api.nvim_buf_is_valid(bufnr) then
    cancel_pending(bufnr)
    inline_completion().enable(false, { bufnr = bufnr })
  end
end

--- True when the built-in shows a suggestion in `bufnr`.
function M.visible(bufnr)
  return buffers[bufnr] ~= nil and #builtin_marks(bufnr) > 0
end

--- The shown suggestion as { text, row, col }, read back from the built-in's extmark.
function M.current(bufnr)
  if not buffers[bufnr] then
    return nil
  end
  local mark = builtin_marks(bufnr)[1]
  if not mark then
    return nil
  end
  local details = mark[4]
  -- The built-in appends a " (2/3)" counter in ComplHintMore after select(); it is not text.
  local function join(chunks)
    local text = {}
    for _, chunk in ipairs(chunks) do
      if chunk[2] ~= "ComplHintMore" then
        text[#text + 1] = chunk[1]
      end
    end
    return table.concat(text)
  end
  local lines = { join(details.virt_text or {}) }
  for _, chunks in ipairs(details.virt_lines or {}) do
    lines[#lines + 1] = join(chunks)
  end
  return { text = table.concat(lines, "\n"), row = mark[2], col = mark[3] }
end

-- The part of an accepted built-in item that is new at the cursor (the item may repeat text
-- typed since its range start).
local function text_after_cursor(item, bufnr)
  local text = item.insert_text
  if type(text) ~= "string" then
    return nil
  end
  local cursor = api.nvim_win_get_cursor(0)
  local row, col = cursor[1] - 1, cursor[2]
  if item.range then
    local start = item.range.start
    if start.row ~= row or start.col > col then
      return nil
    end
    local line = api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ""
    local typed = line:sub(start.col + 1, col)
    if text:sub(1, #typed) ~= typed then
      return nil
    end
    text = text:sub(#typed + 1)
  end
  return text, row, col
end

-- Insert the whole of a ranged item. The built-in's own accept replaces the item's range, which
-- ends where the request was sent, so characters typed since then stayed after the inserted text:
-- typing `r` at `total = |` with `read_file(path)` drawn, then Tab, gave `total = read_file(path)r`.
-- The range's own text (a closing bracket that the item types again) now follows the typed
-- characters and is replaced there.
local function accept_ranged_item(item, bufnr)
  local text, row, col = text_after_cursor(item, bufnr)
  if not text then
    return
  end
  local range = item.range
  local replaced = range.end_.row == range.start.row and range.end_.col - range.start.col or 0
  local line = api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ""
  api.nvim_buf_set_text(bufnr, row, col, row, math.min(col + replaced, #line), suggestion.lines(text))
  local end_row, end_col = suggestion.position_after(text, row, col)
  api.nvim_win_set_cursor(0, { end_row + 1, end_col })
end

-- Insert the first word or line of an item (`part` "word", "line") at the cursor.
local function accept_part(item, bufnr, part)
  local text, row, col = text_after_cursor(item, bufnr)
  if not text or text == "" then
    return
  end
  local taken = part == "word" and suggestion.first_word(text) or suggestion.first_line(text)
  api.nvim_buf_set_text(bufnr, row, col, row, col, suggestion.lines(taken))
  local end_row, end_col = suggestion.position_after(taken, row, col)
  api.nvim_win_set_cursor(0, { end_row + 1, end_col })
end

--- Accept all of the suggestion, or its first word or line (`part` "word", "line").
--- Returns false when nothing was shown. The change is made before this returns, so keys typed
--- right after the accept key land after the inserted text. The built-in's get() makes it on the
--- next tick, after such keys, and with `<Tab>;` typed together the `;` hid the suggestion first.
function M.accept(bufnr, part)
  if not M.visible(bufnr) then
    return false
  end
  local function take_part(item)
    accept_part(item, bufnr, part)
  end

  local completor = builtin_completor(bufnr)
  local item = completor and completor.current
  if not item then
    -- NOTE: without the built-in's private state, get() applies the item one tick late.
    return inline_completion().get({ bufnr = bufnr, on_accept = part ~= "all" and take_part or nil })
  end

  completor:abort()
  if part ~= "all" then
    take_part(item)
  elseif item.range and type(item.insert_text) == "string" and not item.command then
    accept_ranged_item(item, bufnr)
  else
    -- The built-in's own accept: inline items without a range, snippets, and items with a command.
    completor:accept(item)
  end
  return true
end

--- Hide the suggestion. The built-in has no dismiss call, so its per-buffer state is rebuilt by
--- turning it off and on. It sends a new request on the next edit or cursor move.
function M.dismiss(bufnr)
  local shown = M.visible(bufnr)
  cancel_pending(bufnr)
  -- NOTE: a result that the server sent before it read the cancel reaches the discarded state
  -- of the 0.12-dev built-in, which then raises a Lua error. Cancelling first makes this rare.
  local module = inline_completion()
  if module.is_enabled({ bufnr = bufnr }) then
    module.enable(false, { bufnr = bufnr })
    module.enable(true, { bufnr = bufnr })
  end
  return shown
end

--- Request a suggestion now when insert mode is on in `bufnr` and none is shown or requested.
--- The built-in requests only after edits and cursor moves, so text typed while the model was
--- loading got no suggestion until the next key.
function M.refresh(bufnr)
  if not buffers[bufnr] or not settings.is_enabled() then
    return
  end
  if api.nvim_get_current_buf() ~= bufnr or api.nvim_get_mode().mode:sub(1, 1) ~= "i" then
    return
  end
  if M.visible(bufnr) or M.pending_count() > 0 then
    return
  end
  local completor = builtin_completor(bufnr)
  if completor and type(completor.request) == "function" then
    completor:request(TRIGGER_AUTOMATIC)
  end
end

--- Show the next suggestion when the server sent several.
function M.next(bufnr)
  if not M.visible(bufnr) then
    return false
  end
  inline_completion().select({ bufnr = bufnr, count = 1 })
  return true
end

function M.pending_count()
  local count = 0
  for _, client in ipairs(compat.get_clients()) do
    for _, request in pairs(client.requests) do
      if buffers[request.bufnr] and request.method == METHOD and request.type == "pending" then
        count = count + 1
      end
    end
  end
  return count
end

--- Turn the built-in on or off in every attached buffer (:TinyCopilot enable|disable).
function M.set_enabled(enabled)
  for bufnr, _ in pairs(buffers) do
    if api.nvim_buf_is_valid(bufnr) then
      if not enabled then
        cancel_pending(bufnr)
      end
      inline_completion().enable(enabled, { bufnr = bufnr })
    end
  end
end

function M.stop()
  for bufnr, _ in pairs(buffers) do
    M.detach(bufnr)
  end
  pcall(api.nvim_del_augroup_by_name, AUGROUP)
  settings = nil
end

return M
