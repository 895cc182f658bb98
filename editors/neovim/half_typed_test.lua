-- Neovim's built-in LSP client driving `flow lsp` on a workflow whose line is being
-- typed. Run headless by scripts/test.d/neovim.sh:
--   FLOW=target/debug/flow WORK=DIR nvim --headless --clean -u NONE -c "luafile FILE"
-- (Debian's Neovim 0.7 has no `-l`).
-- Each check prints `ok NAME` or `FAIL NAME: why`; the script exits 1 on any failure.

local flow = os.getenv("FLOW")
local work = os.getenv("WORK")
local failures = 0

local function check(name, ok, why)
  if ok then
    print("ok " .. name)
  else
    failures = failures + 1
    print("FAIL " .. name .. ": " .. tostring(why))
  end
end

local function finish()
  print("")
  io.stdout:flush()
  vim.cmd(failures == 0 and "qall!" or "cquit! 1")
end

local file = work .. "/triage.flow"
local source = {
  "import github",
  "",
  "workflow triage(repo: string) -> int {",
  '  step issues = github.list_issues(owner: "acme", repo: repo)',
  '  let open = issues.filter(i, i.state == "open")',
  "  return open.size()",
  "}",
}
vim.fn.writefile(source, file)
vim.cmd("edit " .. file)
local buf = vim.api.nvim_get_current_buf()
vim.bo[buf].filetype = "flow"

local client_id = vim.lsp.start_client({
  name = "flow",
  cmd = { flow, "lsp" },
  root_dir = work,
  workspace_folders = { { uri = vim.uri_from_fname(work), name = "work" } },
})
check("the server starts", client_id ~= nil, "start_client returned nil")
vim.lsp.buf_attach_client(buf, client_id)

local function settle(wanted)
  return vim.wait(15000, function()
    return wanted(vim.diagnostic.get(buf))
  end, 50)
end

local function request(method, line, character, extra)
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(buf) },
    position = { line = line, character = character },
  }
  for k, v in pairs(extra or {}) do
    params[k] = v
  end
  local answers = vim.lsp.buf_request_sync(buf, method, params, 10000) or {}
  for _, answer in pairs(answers) do
    if answer.result ~= nil then
      return answer.result
    end
  end
  return nil
end

-- The clean file: the server answers and reports nothing.
vim.wait(3000, function()
  return vim.lsp.get_client_by_id(client_id) ~= nil
    and vim.lsp.get_client_by_id(client_id).initialized
end, 50)
local hover = request("textDocument/hover", 4, 13)
check("hover on the clean file", hover ~= nil, "no answer")

-- The new user inserts `  let q = issues.` above the return and stops there.
vim.api.nvim_buf_set_lines(buf, 5, 5, false, { "  let q = issues." })
local got_error = settle(function(d)
  return #d == 1
end)
local diagnostics = vim.diagnostic.get(buf)
check("one syntax error while the line is unfinished", got_error, vim.inspect(diagnostics))

-- Hover and definition on `issues` in the untouched `let open` line (0-based 4:13).
hover = request("textDocument/hover", 4, 13)
local shown = hover and hover.contents and (hover.contents.value or "") or ""
check("hover in the untouched line", shown:find("list<github.Issue>", 1, true), vim.inspect(hover))
local definition = request("textDocument/definition", 4, 13)
local target = definition and (definition.range or (definition[1] and definition[1].range))
check("definition in the untouched line", target and target.start.line == 3, vim.inspect(definition))

-- Completion right after `issues.` (0-based 5:17): the list's methods, not a string's.
local completion = request("textDocument/completion", 5, 17)
local labels = {}
for _, item in ipairs((completion and (completion.items or completion)) or {}) do
  labels[item.label] = true
end
check("completion offers the list's methods", labels["size"] and labels["filter"] and labels["map"], vim.inspect(vim.tbl_keys(labels)))
check("completion offers no string methods", not labels["startsWith"] and not labels["charAt"], vim.inspect(vim.tbl_keys(labels)))

-- Rename `open` (declared on 0-based line 4) while the line is still unfinished.
local rename = request("textDocument/rename", 4, 7, { newName = "still_open" })
local edits = 0
for _, list in pairs((rename and rename.changes) or {}) do
  edits = edits + #list
end
check("rename reaches every use of the name", edits == 2, vim.inspect(rename))

-- Finishing the line clears the error.
vim.api.nvim_buf_set_lines(buf, 5, 6, false, { "  let _q = issues.size()" })
check("finishing the line clears the error", settle(function(d)
  return #d == 0
end), vim.inspect(vim.diagnostic.get(buf)))

vim.lsp.stop_client(client_id)
finish()
