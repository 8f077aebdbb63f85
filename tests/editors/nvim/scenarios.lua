-- Scenarios run by driver.lua, one per Neovim process. Each drives the editor with typed keys
-- and records what it saw; the Python tests decide what is right.
local M = {}

local tiny_copilot = function()
  return require("tiny_copilot")
end

-- Where the active frontend draws, and the highlight group of its ghost text.
local function drawing(t)
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
  end, 15000)
end

-- Open a new line at the end of the file and type `typed`; return once a suggestion is drawn.
local function type_until_suggestion(t, typed)
  t.input("Go" .. typed)
  local namespace, hl = drawing(t)
  local drawn = t.wait_until("a suggestion to be drawn", function()
    return t.drawn_text(namespace, hl)
  end, 10000)
  t.record("drawn", drawn)
  t.record("marks", t.marks(namespace))
  t.record("current", tiny_copilot().current())
  t.record("cursor_before", t.cursor())
  t.record("text_before", t.text())
  return drawn
end

function M.accept_all(t)
  start(t)
  type_until_suggestion(t, "    ")
  local before = t.text()
  t.input("<Tab>")
  t.wait_until("the buffer to change", function()
    return t.text() ~= before
  end, 3000)
  t.record("text_after", t.text())
  t.record("cursor_after", t.cursor())
  t.record("mode_after", t.mode())
end

return M
