-- Pure text helpers for suggestions: what an inline completion item adds at the cursor, and the
-- parts that "accept word" and "accept line" take. No editor state lives here.
local compat = require("tiny_copilot.compat")

local M = {}

-- Placeholders of an LSP snippet (`$1`, `${2:text}`, `${3|a,b|}`) reduced to their default text,
-- because ghost text can only show plain text.
local function snippet_to_text(snippet)
  local text = snippet:gsub("%${%d+:([^}]*)}", "%1")
  text = text:gsub("%${%d+|([^,|]*)[^}]*}", "%1")
  text = text:gsub("%${%d+}", "")
  text = text:gsub("%$%d+", "")
  text = text:gsub("\\([$}\\])", "%1")
  return text
end

--- `text` with every "\r\n" and "\r" turned into "\n". Buffer lines hold no line ending, and
--- the server writes line breaks in the document's own ending, "\r\n" in a 'fileformat' dos file.
function M.normalize_newlines(text)
  return (text:gsub("\r\n?", "\n"))
end

local function insert_text_of(item)
  local insert_text = item.insertText
  if type(insert_text) == "string" then
    return M.normalize_newlines(insert_text)
  end
  if type(insert_text) == "table" and insert_text.kind == "snippet" and type(insert_text.value) == "string" then
    return M.normalize_newlines(snippet_to_text(insert_text.value))
  end
  return nil
end

--- Turn one InlineCompletionItem into the text it adds at the cursor.
---
--- `row` and `col` are the cursor (0-based row, 0-based byte column) and `line` is that row's
--- text. Returns { text, row, col, end_col } where text replaces the bytes [col, end_col) of the
--- row, or nil when the item cannot be shown as ghost text: it starts on another row, rewrites
--- text left of the cursor, or adds nothing.
function M.from_item(item, line, row, col, client)
  local text = insert_text_of(item)
  if text == nil then
    return nil
  end
  local end_col = col

  if item.range then
    local start, finish = item.range.start, item.range["end"]
    if start.line ~= row or finish.line ~= row then
      return nil
    end
    local start_col = compat.byte_col(line, start.character, client)
    local finish_col = compat.byte_col(line, finish.character, client)
    if start_col > col or finish_col < col then
      return nil
    end

    -- The item repeats what was typed since range.start; only the rest is new.
    local typed = line:sub(start_col + 1, col)
    if text:sub(1, #typed) ~= typed then
      return nil
    end
    text = text:sub(#typed + 1)
    end_col = finish_col
  end

  if text == "" then
    return nil
  end
  return { text = text, row = row, col = col, end_col = end_col }
end

--- The leading part of `text` that "accept word" inserts: a newline with the next line's
--- indentation, or optional blanks then one run of word characters or of other symbols, with
--- the blanks after it when nothing else follows.
function M.first_word(text)
  local word = text:match("^\n[ \t]*")
    or text:match("^[ \t]*[%w_]+")
    or text:match("^[ \t]*[^%w_%s]+")
    or text:match("^[ \t]+")
    or text:sub(1, 1)
  -- Mid-line the server suggests a word and a space, so that it does not glue to the word after
  -- the cursor; a space left behind would be dropped (0.12) or missing after <Esc> (extmarks).
  if text:sub(#word + 1):match("^[ \t]+$") then
    return text
  end
  return word
end

--- The leading part of `text` that "accept line" inserts: the rest of the current line, or,
--- when the suggestion continues on the next line, that newline and the whole next line.
function M.first_line(text)
  if text:sub(1, 1) == "\n" then
    return text:match("^\n[^\n]*")
  end
  return text:match("^[^\n]*")
end

--- Split `text` into lines the way nvim_buf_set_text expects.
function M.lines(text)
  return vim.split(text, "\n", { plain = true })
end

--- The cursor (0-based row, 0-based byte column) after inserting `text` at `row`, `col`.
function M.position_after(text, row, col)
  local lines = M.lines(text)
  if #lines == 1 then
    return row, col + #text
  end
  return row + #lines - 1, #lines[#lines]
end

return M
