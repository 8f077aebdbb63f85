-- Buffer-local insert-mode keys. Each key acts only when it can (a suggestion is shown, or the
-- action makes sense without one) and otherwise types its usual meaning, so Tab still indents.
local M = {}

-- Action names, in the order :checkhealth and the README list them.
M.actions = { "accept", "accept_word", "accept_line", "dismiss", "next" }

local DESCRIPTIONS = {
  accept = "tiny-copilot: accept the suggestion",
  accept_word = "tiny-copilot: accept the next word of the suggestion",
  accept_line = "tiny-copilot: accept the next line of the suggestion",
  dismiss = "tiny-copilot: dismiss the suggestion",
  next = "tiny-copilot: show the next suggestion",
}

local mapped = {}

-- Functions that a key's <Cmd> result runs, by id. An <expr> mapping may not change the buffer,
-- and vim.schedule() ran the action only after keys typed right behind it: `<Tab>x` arriving
-- together inserted the `x` and then found the suggestion gone. A <Cmd> runs in typeahead order.
local queued = {}
local last_queued_id = 0

--- Run the function that `id` names once; a <Cmd> returned by our keys calls this.
function M.run_queued(id)
  local callback = queued[id]
  queued[id] = nil
  if callback then
    callback()
  end
end

-- Keys that run `callback` in typeahead order, after the keys before them and before the ones after.
local function queue(callback)
  last_queued_id = last_queued_id + 1
  queued[last_queued_id] = callback
  return string.format("<Cmd>lua require('tiny_copilot.keymaps').run_queued(%d)<CR>", last_queued_id)
end

local function termcodes(keys)
  return vim.api.nvim_replace_termcodes(keys, true, true, true)
end

-- The insert-mode mapping of `lhs` that our key replaces in `bufnr`, as maparg() returns it.
-- It is a global mapping or one the buffer had, and nil when `lhs` was not mapped.
local function previous_mapping(bufnr, lhs)
  local previous = vim.api.nvim_buf_call(bufnr, function()
    return vim.fn.maparg(lhs, "i", false, true)
  end)
  -- An empty result can come back as a table with only a type marker (0.7), so test a field.
  if type(previous) ~= "table" or previous.lhs == nil then
    return nil
  end
  return previous
end

-- What the key does when it is not ours: run the mapping it replaced (for example Neovim 0.12's
-- default <Tab>, which jumps in snippets), else type the key itself.
local function fallback(previous, lhs)
  if not previous then
    return lhs
  end
  if previous.callback then
    -- Neovim 0.7 reports a Lua mapping's callback as a number that Lua cannot call.
    if type(previous.callback) ~= "function" then
      return lhs
    end
    if previous.expr == 1 then
      return previous.callback() or ""
    end
    return queue(previous.callback)
  end
  local rhs = previous.rhs or ""
  if previous.expr == 1 then
    return vim.api.nvim_eval(rhs)
  end
  if previous.noremap == 1 then
    return rhs
  end
  -- A recursive mapping must see other mappings again, which our <expr> result cannot.
  vim.api.nvim_feedkeys(termcodes(rhs), "im", false)
  return ""
end

--- Map `keys` (action -> lhs or false) in `bufnr`. `can_run(action, bufnr)` decides at once
--- whether the key is ours; `run(action, bufnr)` then runs from a <Cmd> that the key returns,
--- because an <expr> mapping may not change the buffer.
function M.attach(bufnr, keys, can_run, run)
  M.detach(bufnr)
  local lhs_list = {}
  for _, action in ipairs(M.actions) do
    local lhs = keys[action]
    if lhs then
      local previous = previous_mapping(bufnr, lhs)
      if previous and previous.desc and previous.desc:find("^tiny%-copilot:") then
        previous = nil
      end
      vim.keymap.set("i", lhs, function()
        if not can_run(action, bufnr) then
          return fallback(previous, lhs)
        end
        return queue(function()
          run(action, bufnr)
        end)
      end, { buffer = bufnr, expr = true, silent = true, desc = DESCRIPTIONS[action] })
      lhs_list[#lhs_list + 1] = lhs
    end
  end
  mapped[bufnr] = lhs_list
end

function M.detach(bufnr)
  local lhs_list = mapped[bufnr]
  mapped[bufnr] = nil
  if not lhs_list or not vim.api.nvim_buf_is_valid(bufnr) then
    return
  end
  for _, lhs in ipairs(lhs_list) do
    pcall(vim.keymap.del, "i", lhs, { buffer = bufnr })
  end
end

function M.detach_all()
  for bufnr, _ in pairs(mapped) do
    M.detach(bufnr)
  end
end

return M
