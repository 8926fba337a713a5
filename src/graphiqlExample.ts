/** The tabs GraphiQL opens with: upload, look at requests, follow one live. */

const UPLOAD = `# 1. Upload a CSV. GraphiQL cannot attach files, so send this mutation with curl
#    (the multipart request spec; the CSRF header is required for multipart):
#
#   curl http://localhost:4000/graphql -H 'x-graphql-yoga-csrf: 1' \\
#     -F operations='{"query":"mutation($file: Upload!) { uploadCsv(file: $file) { __typename ... on UploadCsvSuccess { request { id } } ... on Error { code message } } }","variables":{"file":null}}' \\
#     -F map='{"0":["variables.file"]}' -F 0=@products.csv
#
# or use the dashboard at / or the CLI: npx squeeze upload products.csv --wait
mutation Upload($file: Upload!, $webhookUrl: String) {
  uploadCsv(file: $file, webhookUrl: $webhookUrl, options: { quality: 50, format: JPEG }) {
    __typename
    ... on UploadCsvSuccess { request { id status progress { total } } }
    ... on CsvInvalidError { problems { line column message } }
    ... on Error { code message }
  }
}
`;

const RECENT = `# 2. The latest requests, newest first. Run it (the ▶ button); it works on an empty database.
query RecentRequests {
  requests(first: 10) {
    totalCount
    edges {
      node {
        id
        status
        createdAt
        progress { total done failed cancelled pending }
        savedPercent
        outputCsvUrl
      }
    }
  }
}
`;

const ONE = `# 3. One request with its products and images: put its id in the variables below.
query OneRequest($id: ID!) {
  request(id: $id) {
    status
    progress { total done failed pending }
    inputBytes outputBytes savedPercent
    outputCsvUrl errorsCsvUrl
    products(first: 20) {
      edges { node { serialNumber productName inputImageUrls outputImageUrls images { status attempts error { code message } } } }
    }
    webhookDeliveries { eventType status attemptCount lastStatusCode }
  }
}
`;

const FOLLOW = `# 4. Follow a request live (over WebSocket): the current state, one event per image, then the end.
subscription FollowRequest($id: ID!) {
  requestProgress(requestId: $id) {
    status
    progress { total done failed pending }
    image { inputUrl outputUrl status error { code } }
    request { outputCsvUrl }
  }
}
`;

const ID_VARIABLES = JSON.stringify({ id: 'paste-a-request-id-here' }, null, 2);

export const GRAPHIQL_DEFAULT_QUERY = RECENT;

export const GRAPHIQL_TABS = [
  { query: RECENT },
  { query: UPLOAD, variables: JSON.stringify({ file: null, webhookUrl: null }, null, 2) },
  { query: ONE, variables: ID_VARIABLES },
  { query: FOLLOW, variables: ID_VARIABLES },
];
