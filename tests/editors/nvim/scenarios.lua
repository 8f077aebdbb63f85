-- Scenarios run by driver.lua, one per Neovim process. Each drives the editor with typed keys
-- and records what it saw; the Python tests decide what is right.
local M = {}

local INLINE_COMPLETION = "textDocument/inlineCompletion"

local function tiny_copilot()
  return require("tiny_copilot")
end

local function compat()
  return require("tiny_copilot.compat")
end

-- Where the active frontend draws, and the highlight group of its ghost text.
local function drawing()
  if tiny_copilot().status().frontend == "native" then
    return "nvim.lsp.inline_completion", "ComplHint"
  end
  return "tiny_copilot_ghost", "Comment"
end

local function start(t, options)
  tiny_copilot().setup(options or t.options())
  t.wait_until("the server to initialize, attach the buffer and load the model", function()
    local status = tiny_copilot().status()
    local loaded = status.progress.finished >= 1 and status.progress.active == 0
    return status.server_initialized and #status.attached_buffers == 1 and loaded
    -- Importing torch and loading the model took over 15 s on a 2-core machine under load.
  end, 40000)
  t.record("frontend", tiny_copilot().status().frontend)
end

-- Characters typed one at a time when the model has nothing to suggest for the text so far. A
-- test model trained for seconds has blind spots, and which ones differ between trainings.
local RETRY_KEYS = { "r", "e", "s", "u", "l", "t", " ", "=", " ", "o", "s", "." }

local function pending_inline_requests(t)
  local count = 0
  for _, request in ipairs(t.requests()) do
    if request.method == INLINE_COMPLETION and request.type == "pending" then
      count = count + 1
    end
  end
  return count
end

-- Wait until a suggestion is drawn (return its text), or until the requests sent since
-- `events_before` request events got their replies and nothing was drawn (return nil).
local function wait_for_drawn_or_nothing(t, events_before)
  local namespace, hl = drawing()
  local settled_since = nil
  local outcome = t.wait_until("a suggestion or an empty reply", function()
    local drawn = t.drawn_text(namespace, hl)
    if drawn then
      return { drawn = drawn }
    end
    local requested = #t.request_events > events_before
    if not requested or pending_inline_requests(t) > 0 then
      settled_since = nil
      return false
    end
    -- Give the reply time to be drawn, and a following debounced request time to go out.
    settled_since = settled_since or (vim.uv or vim.loop).hrtime()
    if (vim.uv or vim.loop).hrtime() - settled_since > 400 * 1e6 then
      return { drawn = false }
    end
    return false
  end, 15000)
  return outcome.drawn or nil
end

-- Type `keys`, then more characters until the model suggests something. Record the suggestion
-- under `prefix`.._drawn, _marks, _current, _cursor and _text, and return its text.
-- `events_before` (default: now) is where to start looking for the requests that `keys` caused.
local function type_until_suggestion(t, prefix, keys, events_before)
  local namespace, _ = drawing()
  events_before = events_before or #t.request_events
  t.input(keys)
  local drawn = wait_for_drawn_or_nothing(t, events_before)
  local retries = 0
  while not drawn and retries < #RETRY_KEYS do
    retries = retries + 1
    events_before = #t.request_events
    t.input(RETRY_KEYS[retries])
    drawn = wait_for_drawn_or_nothing(t, events_before)
  end
  if not drawn then
    error("the model suggested nothing after " .. #RETRY_KEYS .. " extra characters", 0)
  end
  t.record(prefix .. "_retries", retries)
  t.record(prefix .. "_drawn", drawn)
  t.record(prefix .. "_marks", t.marks(namespace))
  t.record(prefix .. "_current", tiny_copilot().current() or vim.NIL)
  t.record(prefix .. "_cursor", t.cursor())
  t.record(prefix .. "_text", t.text())
  return drawn
end

local function press_and_wait_for_change(t, keys)
  local before = t.text()
  t.input(keys)
  t.wait_until("the buffer to change after " .. keys, function()
    return t.text() ~= before
  end, 3000)
end

-- Run `action(request)` once, for the first inline completion request that goes out.
local function on_first_request(t, action)
  local done = false
  t.on_request_change(function()
    if done then
      return
    end
    for _, request in ipairs(t.requests()) do
      if request.method == INLINE_COMPLETION and request.type == "pending" then
        done = true
        action(request)
        return
      end
    end
  end)
  return function()
    return done
  end
end

-- Dismiss one suggestion, then accept the next one whole with Tab.
function M.dismiss_and_accept(t)
  start(t)
  local namespace, hl = drawing()
  type_until_suggestion(t, "first", "Go    ")
  t.input("<C-]>")
  t.wait_until("the suggestion to disappear", function()
    return t.drawn_text(namespace, hl) == nil
  end, 3000)
  -- Nothing was typed or moved, so nothing should come back either.
  t.sleep(600)
  t.record("dismissed_marks", t.marks(namespace))
  t.record("dismissed_current", tiny_copilot().current() or vim.NIL)
  t.record("dismissed_text", t.text())
  t.record("dismissed_mode", t.mode())

  -- Characters of 2 and 4 bytes (1 and 2 UTF-16 units) before the cursor, so the LSP columns
  -- of the reply differ from byte columns whichever encoding was negotiated.
  type_until_suggestion(t, "second", 's = "é😀" + ')
  press_and_wait_for_change(t, "<Tab>")
  t.record("accepted_text", t.text())
  t.record("accepted_cursor", t.cursor())
  t.record("accepted_mode", t.mode())
end

-- Accept the next word, then the next line, of a suggestion.
function M.accept_partial(t)
  start(t)
  local namespace, hl = drawing()
  type_until_suggestion(t, "word", "Go    ")
  local events_before_word = #t.request_events
  press_and_wait_for_change(t, "<M-Right>")
  t.record("word_accepted_text", t.text())
  t.record("word_accepted_cursor", t.cursor())
  t.record("word_rest_drawn", t.drawn_text(namespace, hl) or vim.NIL)

  -- The built-in drops the rest after a partial accept and requests again, so wait for one.
  type_until_suggestion(t, "line", "", events_before_word)
  press_and_wait_for_change(t, "<M-C-Right>")
  t.record("line_accepted_text", t.text())
  t.record("line_accepted_cursor", t.cursor())
end

-- Enter insert mode at (row, col) of the current buffer (1-based row, byte column) and return the
-- suggestion drawn there. When nothing is suggested, the scenario fails with an error naming `where`.
local function suggestion_at(t, row, col, keys, where)
  vim.api.nvim_win_set_cursor(0, { row, col })
  local events_before = #t.request_events
  t.input(keys)
  local drawn = wait_for_drawn_or_nothing(t, events_before)
  if not drawn then
    error("the shipped model suggested nothing at `" .. where .. "`", 0)
  end
  return drawn
end

-- Start the server on a buffer that ends with a loop, and return the suggestion the shipped model
-- draws mid-line at `for |line in data:` (one word and a space).
local function midline_suggestion(t)
  vim.api.nvim_buf_set_lines(0, -1, -1, false, { "    for line in data:", "        print(line)" })
  start(t)
  return suggestion_at(t, vim.api.nvim_buf_line_count(0) - 1, 8, "i", "for |line in data:")
end

-- Mid-line: accept the word with accept_word, then leave insert mode.
function M.midline_accept_word(t)
  local drawn = midline_suggestion(t)
  local namespace, hl = drawing()
  t.record("drawn", drawn)
  t.record("marks", t.marks(namespace))
  t.record("cursor", t.cursor())
  t.record("line", vim.api.nvim_get_current_line())

  press_and_wait_for_change(t, "<M-Right>")
  t.record("word_accepted_line", vim.api.nvim_get_current_line())
  t.record("word_accepted_cursor", t.cursor())
  t.record("word_rest_drawn", t.drawn_text(namespace, hl) or vim.NIL)
  t.input("<Esc>")
  t.record("line_after_escape", vim.api.nvim_get_current_line())
end

-- Type a character that differs from a shown mid-line suggestion, then read the screen before the
-- next reply can arrive (both frontends wait at least 150 ms before they ask again).
function M.type_over_suggestion(t)
  local drawn = midline_suggestion(t)
  local namespace, hl = drawing()
  t.record("drawn", drawn)
  local typed = drawn:sub(1, 1) == "q" and "z" or "q"
  t.record("typed", typed)
  vim.api.nvim_input(typed)
  t.sleep(20)
  t.record("line_after_typing", vim.api.nvim_get_current_line())
  t.record("drawn_after_typing", t.drawn_text(namespace, hl) or vim.NIL)
  t.record("marks_after_typing", t.marks(namespace))

  -- At a line end, type the suggestion's own first character instead.
  t.input("<Esc>")
  vim.api.nvim_buf_set_lines(0, -1, -1, false, { "    total = " })
  local line_end_drawn = suggestion_at(t, vim.api.nvim_buf_line_count(0), 0, "A", "    total = |")
  t.record("line_end_drawn", line_end_drawn)
  vim.api.nvim_input(line_end_drawn:sub(1, 1))
  t.sleep(20)
  t.record("line_end_drawn_after_typing", t.drawn_text(namespace, hl) or vim.NIL)
end

-- The same mid-line typing in the lower of two windows on the buffer, with the upper window's
-- cursor elsewhere, then Tab before the next reply can arrive.
function M.type_over_suggestion_in_split(t)
  vim.api.nvim_buf_set_lines(0, -1, -1, false, { "    for line in data:", "        print(line)" })
  start(t)
  local namespace, hl = drawing()
  vim.cmd("split")
  vim.api.nvim_win_set_cursor(0, { 1, 0 })
  vim.cmd("wincmd j")
  local drawn = suggestion_at(t, vim.api.nvim_buf_line_count(0) - 1, 8, "i", "for |line in data:")
  t.record("drawn", drawn)
  t.record("marks", t.marks(namespace))
  t.record("cursor", t.cursor())
  local typed = drawn:sub(1, 1) == "q" and "z" or "q"
  t.record("typed", typed)
  vim.api.nvim_input(typed)
  t.sleep(20)
  t.record("drawn_after_typing", t.drawn_text(namespace, hl) or vim.NIL)
  vim.api.nvim_input("<Tab>")
  t.sleep(20)
  t.record("line_after_tab", vim.api.nvim_get_current_line())
end

-- At a line end, type the suggestion's first character, then accept the rest with Tab before the
-- next reply can arrive.
function M.type_first_character_then_accept(t)
  start(t)
  local namespace, hl = drawing()
  vim.api.nvim_buf_set_lines(0, -1, -1, false, { "    total = " })
  local drawn = suggestion_at(t, vim.api.nvim_buf_line_count(0), 0, "A", "    total = |")
  t.record("drawn", drawn)
  vim.api.nvim_input(drawn:sub(1, 1))
  t.sleep(20)
  t.record("drawn_after_typing", t.drawn_text(namespace, hl) or vim.NIL)
  vim.api.nvim_input("<Tab>")
  t.sleep(30)
  t.record("text_after_tab", t.text())
  t.record("cursor_after_tab", t.cursor())
  t.record("messages", vim.api.nvim_exec2("messages", { output = true }).output)
end

-- At a line end, step through the popup menu of keyword matches with <C-n>, which fires
-- TextChangedP but not CursorMovedI. The extmark frontend waits 1 s before its next request, and the
-- built-in 200 ms, so every suggestion drawn during the steps is the first one.
function M.popup_menu_over_suggestion(t)
  start(t, vim.tbl_extend("force", t.options(), { debounce_ms = 1000 }))
  local namespace, hl = drawing()
  vim.api.nvim_buf_set_lines(0, -1, -1, false, { "    total = " })
  local drawn = suggestion_at(t, vim.api.nvim_buf_line_count(0), 0, "A", "    total = |")
  t.record("drawn", drawn)
  local steps = {}
  for _ = 1, 3 do
    vim.api.nvim_input("<C-n>")
    t.sleep(20)
    steps[#steps + 1] = {
      line = vim.api.nvim_get_current_line(),
      popup_menu = vim.fn.pumvisible() == 1,
      drawn = t.drawn_text(namespace, hl) or vim.NIL,
    }
  end
  t.record("steps", steps)
end

-- In a file with CRLF line endings ('fileformat' dos), accept a multi-line suggestion on a new
-- line in a `with` block.
function M.crlf_multiline_accept(t)
  vim.bo.fileformat = "dos"
  vim.cmd("write")
  start(t)
  t.record("drawn", suggestion_at(t, 5, 0, "o", "o under `with open(path) as handle:`"))
  t.record("text_before", t.text())
  t.record("cursor_before", t.cursor())
  press_and_wait_for_change(t, "<Tab>")
  t.record("text_after", t.text())
end

-- At a line end, press Tab and type a character in one batch of input, as when keys arrive
-- together over a slow terminal connection or while Neovim is busy.
function M.type_right_after_accept(t)
  start(t)
  vim.api.nvim_buf_set_lines(0, -1, -1, false, { "    total = " })
  local drawn = suggestion_at(t, vim.api.nvim_buf_line_count(0), 0, "A", "    total = |")
  t.record("drawn", drawn)
  vim.api.nvim_input("<Tab>;")
  t.sleep(100)
  t.record("line", vim.api.nvim_get_current_line())
  t.record("cursor", t.cursor())
end

-- Enter insert mode at a line end as soon as the server is initialized, while it loads the model,
-- and type nothing more.
function M.type_while_loading(t)
  tiny_copilot().setup(t.options())
  t.wait_until("the server to initialize and attach the buffer", function()
    local status = tiny_copilot().status()
    return status.server_initialized and #status.attached_buffers == 1
  end, 40000)
  vim.api.nvim_buf_set_lines(0, -1, -1, false, { "    total = " })
  vim.api.nvim_win_set_cursor(0, { vim.api.nvim_buf_line_count(0), 0 })
  t.input("A")
  t.record("loads_finished_when_typed", tiny_copilot().status().progress.finished)
  t.wait_until("the model to load", function()
    return tiny_copilot().status().progress.finished >= 1
  end, 40000)
  local namespace, hl = drawing()
  -- More than a debounce and a generation after the load.
  t.sleep(1500)
  t.record("drawn", t.drawn_text(namespace, hl) or vim.NIL)
end

-- Leave insert mode while an inline completion request is in flight.
function M.insert_leave_cancels(t)
  start(t)
  local escaped = on_first_request(t, function(request)
    t.record("request_in_flight", request.id)
    vim.api.nvim_input("<Esc>")
  end)
  t.input("Go    x")
  t.wait_until("insert mode to end", function()
    return escaped() and t.mode() == "n"
  end, 10000)
  t.record("requests_after_escape", t.requests())
  t.record("pending_after_escape", tiny_copilot().status().requests_in_flight)
  -- Longer than the debounce plus a generation, so a late request or reply would show up.
  t.sleep(1500)
  local namespace, _ = drawing()
  t.record("requests_later", t.requests())
  t.record("marks_later", t.marks(namespace))
  t.record("request_events", t.request_events)
  t.record("mode_later", t.mode())
end

-- Type on while a request is in flight: whatever is drawn belongs to the final text and cursor.
function M.edit_during_request(t)
  start(t)
  local typed = on_first_request(t, function(request)
    t.record("first_request", request.id)
    vim.api.nvim_input("y")
  end)
  type_until_suggestion(t, "final", "Go    x")
  t.record("typed_during_request", typed())
  local namespace, _ = drawing()
  t.record("line", vim.api.nvim_get_current_line())
  t.record("cursor", t.cursor())
  t.record("marks", t.marks(namespace))
  t.record("request_events", t.request_events)
end

local function capture_notifications()
  local messages = {}
  vim.notify = function(message, level)
    table.insert(messages, { message = message, level = level })
  end
  return messages
end

-- Kill the server while a buffer is attached, open a second file (which starts a new server),
-- then go back to the first buffer and type.
function M.server_killed(t)
  local messages = capture_notifications()
  local options = t.options()
  -- The shell records the server's process id, which Neovim 0.12 does not expose.
  local pid_file = vim.fn.tempname()
  options.cmd = vim.list_extend({ "sh", "-c", 'echo $$ > "$0"; exec "$@"', pid_file }, options.cmd)
  start(t, options)
  local first_buffer = vim.api.nvim_get_current_buf()
  local first_client = tiny_copilot().status().client_id

  local pid = tonumber(vim.fn.readfile(pid_file)[1])
  t.record("pid", pid)
  vim.loop.kill(pid, 9)
  t.wait_until("the client to notice the exit", function()
    return not tiny_copilot().status().server_running
  end, 10000)
  t.sleep(200)
  t.record("attached_after_kill", tiny_copilot().status().attached_buffers)
  t.record("messages_after_kill", vim.deepcopy(messages))

  vim.cmd("edit " .. vim.fn.fnameescape(vim.fn.fnamemodify(vim.api.nvim_buf_get_name(0), ":h") .. "/other.py"))
  t.wait_until("a new server to attach the second buffer", function()
    local status = tiny_copilot().status()
    return status.server_initialized and status.client_id ~= first_client and status.progress.finished >= 1
  end, 40000)
  vim.cmd("buffer " .. first_buffer)
  local client_id = tiny_copilot().status().client_id
  t.record("first_buffer_on_new_client", vim.tbl_contains(vim.lsp.get_buffers_by_client_id(client_id), first_buffer))
  t.record("attached_later", tiny_copilot().status().attached_buffers)
  vim.api.nvim_buf_set_lines(0, -1, -1, false, { "    total = " })
  local drawn = suggestion_at(t, vim.api.nvim_buf_line_count(0), 0, "A", "    total = |")
  t.record("drawn", drawn)
  t.record("messages", messages)
end

local function health_report()
  vim.cmd("checkhealth tiny_copilot")
  local lines = vim.api.nvim_buf_get_lines(0, 0, -1, false)
  vim.cmd("bwipeout!")
  return lines
end

-- Type `keys` in insert mode on a new empty last line (no autoindent) and return that line.
local function type_on_new_line(t, keys)
  local count = vim.api.nvim_buf_line_count(0)
  vim.api.nvim_buf_set_lines(0, count, count, false, { "" })
  vim.api.nvim_win_set_cursor(0, { count + 1, 0 })
  t.input("A" .. keys .. "<Esc>")
  return vim.api.nvim_get_current_line()
end

local function buffer_mapping(lhs)
  local mapping = vim.fn.maparg(lhs, "i", false, true)
  if mapping.buffer ~= 1 then
    return vim.NIL
  end
  return mapping.desc or ""
end

-- setup() twice, :TinyCopilot subcommands, key fallbacks, :checkhealth, restart, teardown().
function M.lifecycle(t)
  local messages = capture_notifications()
  local options = t.options()
  -- A mapping that the plugin's dismiss key replaces; it must still run when nothing is shown.
  -- A Vim script mapping, because 0.7 cannot call a Lua mapping's callback from Lua.
  vim.cmd("inoremap <C-]> FALLBACK")

  start(t, options)
  local first_client = tiny_copilot().status().client_id
  tiny_copilot().setup(options)
  t.wait_until("the buffer to be attached again", function()
    return #tiny_copilot().status().attached_buffers == 1
  end, 5000)
  local names = {}
  for _, client in ipairs(compat().get_clients()) do
    table.insert(names, client.name)
  end
  t.record("clients_after_second_setup", names)
  t.record("same_client_after_second_setup", tiny_copilot().status().client_id == first_client)
  t.record("filetype_autocmds", #vim.api.nvim_get_autocmds({ group = "tiny_copilot", event = "FileType" }))
  t.record("rename_autocmds", #vim.api.nvim_get_autocmds({ group = "tiny_copilot", event = "BufFilePost" }))
  t.record("tab_mapping", buffer_mapping("<Tab>"))

  vim.cmd("TinyCopilot status")
  t.record("status_message", messages[#messages])
  t.record("health", health_report())

  vim.cmd("TinyCopilot disable")
  t.record("enabled_after_disable", tiny_copilot().status().enabled)
  local events_before = #t.request_events
  t.input("Go    x")
  t.sleep(500)
  t.input("<Esc>")
  t.record("requests_while_disabled", #t.request_events - events_before)
  -- With nothing shown, Tab and the dismiss key do what they did before the plugin mapped them.
  t.record("tab_line_mapped", type_on_new_line(t, "<Tab>x"))
  t.record("dismiss_line_mapped", type_on_new_line(t, "<C-]>"))
  vim.cmd("TinyCopilot enable")
  t.record("enabled_after_enable", tiny_copilot().status().enabled)

  vim.cmd("TinyCopilot bogus")
  t.record("bogus_message", messages[#messages])

  vim.cmd("TinyCopilot restart")
  local restarted = t.wait_until("the restarted server to attach the buffer", function()
    local status = tiny_copilot().status()
    return status.server_initialized and #status.attached_buffers == 1 and status
  end, 40000)
  t.record("client_changed_on_restart", restarted.client_id ~= first_client)
  local old = vim.lsp.get_client_by_id(first_client)
  t.record("old_client_stopped", old == nil or compat().client_is_stopped(old))

  local last_client = restarted.client_id
  tiny_copilot().teardown()
  t.wait_until("the server to stop", function()
    local client = vim.lsp.get_client_by_id(last_client)
    return client == nil or compat().client_is_stopped(client)
  end, 5000)
  local groups = {}
  for _, name in ipairs({ "tiny_copilot", "tiny_copilot_ghost", "tiny_copilot_native" }) do
    if pcall(vim.api.nvim_get_autocmds, { group = name }) then
      table.insert(groups, name)
    end
  end
  t.record("augroups_after_teardown", groups)
  t.record("tab_mapping_after_teardown", buffer_mapping("<Tab>"))
  t.record("command_after_teardown", vim.fn.exists(":TinyCopilot"))
  t.record("status_after_teardown", tiny_copilot().status())
  t.record("tab_line_unmapped", type_on_new_line(t, "<Tab>x"))
end

-- A --checkpoint folder that does not exist: the server runs, but without a model.
function M.health_without_model(t)
  local messages = capture_notifications()
  local options = t.options()
  vim.list_extend(options.cmd, { "--checkpoint", vim.fn.tempname() })
  tiny_copilot().setup(options)
  t.wait_until("the server to finish loading", function()
    local status = tiny_copilot().status()
    return status.server_initialized and status.progress.finished >= 1 and status.progress.active == 0
  end, 40000)
  t.record("health", health_report())
  vim.cmd("TinyCopilot status")
  t.record("status_message", messages[#messages])
end

-- :TinyCopilot status and :checkhealth in buffers that get no suggestions: a Lua buffer that
-- the plugin attaches but whose language the server's enabledLanguages leaves out, and a
-- JavaScript buffer outside the plugin's filetypes option.
function M.status_outside_languages(t)
  local messages = capture_notifications()
  local options = vim.tbl_extend("force", t.options(), { filetypes = { "python", "lua" } })
  start(t, options)
  vim.cmd("TinyCopilot status")
  t.record("python_status", messages[#messages])

  local folder = vim.fn.fnamemodify(vim.api.nvim_buf_get_name(0), ":h")
  vim.cmd("edit " .. vim.fn.fnameescape(folder .. "/init.lua"))
  t.wait_until("the Lua buffer to be attached", function()
    return #tiny_copilot().status().attached_buffers == 2
  end, 10000)
  vim.cmd("TinyCopilot status")
  t.record("lua_status", messages[#messages])

  vim.cmd("edit " .. vim.fn.fnameescape(folder .. "/app.js"))
  vim.cmd("TinyCopilot status")
  t.record("javascript_status", messages[#messages])
  t.record("health", health_report())

  -- The plugin reads a nested section and snake_case keys as the server does. Here "*" enables Lua.
  options.settings = { tinyCopilot = { enabled_languages = { "*" } } }
  tiny_copilot().setup(options)
  vim.cmd("buffer " .. vim.fn.bufnr(folder .. "/init.lua"))
  vim.cmd("TinyCopilot status")
  t.record("lua_status_all_languages", messages[#messages])
end

-- Rename the attached buffer with :saveas, then ask for a suggestion in it.
function M.saveas_then_type(t)
  start(t)
  vim.cmd("saveas " .. vim.fn.fnameescape(vim.fn.fnamemodify(vim.api.nvim_buf_get_name(0), ":h") .. "/renamed.py"))
  vim.api.nvim_buf_set_lines(0, -1, -1, false, { "    total = " })
  local events_before = #t.request_events
  vim.api.nvim_win_set_cursor(0, { vim.api.nvim_buf_line_count(0), 0 })
  t.input("A")
  t.record("drawn", wait_for_drawn_or_nothing(t, events_before) or vim.NIL)
end

-- Close the file with :bdelete, open it again, then ask for a suggestion in it.
function M.bdelete_then_reopen(t)
  start(t)
  local path = vim.api.nvim_buf_get_name(0)
  vim.cmd("bdelete")
  vim.cmd("edit " .. vim.fn.fnameescape(path))
  t.wait_until("the reopened buffer to be attached", function()
    return vim.tbl_contains(tiny_copilot().status().attached_buffers, vim.api.nvim_get_current_buf())
  end, 5000)
  vim.api.nvim_buf_set_lines(0, -1, -1, false, { "    total = " })
  local events_before = #t.request_events
  vim.api.nvim_win_set_cursor(0, { vim.api.nvim_buf_line_count(0), 0 })
  t.input("A")
  t.record("drawn", wait_for_drawn_or_nothing(t, events_before) or vim.NIL)
end

-- Open a second file in the same window, keeping the first one loaded, and type in the second.
function M.type_in_second_file(t)
  start(t)
  local second = vim.fn.fnamemodify(vim.api.nvim_buf_get_name(0), ":h") .. "/second.py"
  vim.fn.writefile({ "def area(width, height):", "    return width * height", "" }, second)
  vim.cmd("edit " .. vim.fn.fnameescape(second))
  t.wait_until("the second buffer to be attached", function()
    return vim.tbl_contains(tiny_copilot().status().attached_buffers, vim.api.nvim_get_current_buf())
  end, 5000)
  t.record("first_buffer_loaded", vim.api.nvim_buf_is_loaded(vim.fn.bufnr("sample.py")))
  vim.api.nvim_win_set_cursor(0, { 2, 0 })
  local events_before = #t.request_events
  t.input("A<CR>")
  t.record("drawn", wait_for_drawn_or_nothing(t, events_before) or vim.NIL)
  t.input("<Esc>")
end

-- Accept through the Lua function from the user's own <expr> mapping, with a fallback key.
function M.accept_from_expr_mapping(t)
  start(t, vim.tbl_extend("force", t.options(), { keys = { accept = false } }))
  vim.keymap.set("i", "<C-l>", function()
    if not tiny_copilot().accept() then
      return "<C-l>"
    end
    return ""
  end, { expr = true })
  vim.api.nvim_buf_set_lines(0, -1, -1, false, { "    total = " })
  t.record("drawn", suggestion_at(t, vim.api.nvim_buf_line_count(0), 0, "A", "    total = |"))
  t.input("<C-l>")
  t.sleep(100)
  t.record("line", vim.api.nvim_get_current_line())
  t.record("cursor", t.cursor())
  t.record("messages", vim.api.nvim_exec("messages", true))
end

-- Option checks and defaults, without a server.
function M.config(t)
  local config = require("tiny_copilot.config")
  t.record("defaults", config.defaults)
  t.record("server_enabled_languages", config.SERVER_ENABLED_LANGUAGES)
  local errors = {}
  local bad = {
    unknown = { debounce = 10 },
    unknown_key = { keys = { accept_all = "<Tab>" } },
    negative_debounce = { debounce_ms = -1 },
    empty_cmd = { cmd = {} },
    cmd_string = { cmd = "tiny-copilot-lsp" },
    native = { native = true },
    key_number = { keys = { accept = 1 } },
  }
  for name, options in pairs(bad) do
    local ok, err = pcall(config.resolve, options)
    errors[name] = ok and vim.NIL or err
  end
  t.record("errors", errors)
  t.record("resolved", config.resolve({ keys = { dismiss = false }, filetypes = { "lua" } }))
  -- vim.NIL is how Lua spells JSON null, e.g. the checkpoint setting's "serve the shipped model".
  local ok, resolved = pcall(config.resolve, { settings = { checkpoint = vim.NIL, maxLines = 2 } })
  t.record("null_setting_error", ok and vim.NIL or resolved)
  t.record("null_setting_kept", ok and resolved.settings.checkpoint == vim.NIL and resolved.settings.maxLines == 2)
  -- :checkhealth copies the options too; no buffer has this filetype, so no server starts.
  local set_up = pcall(tiny_copilot().setup, { settings = { checkpoint = vim.NIL }, filetypes = { "no_such_filetype" } })
  t.record("null_setting_setup", set_up)
  t.record("null_setting_health", health_report())
  tiny_copilot().teardown()
  t.record("health", health_report())
end

return M
