/** What GraphiQL opens with: a query that works on an empty database, and the other operations to try. */
export const GRAPHIQL_DEFAULT_QUERY = `# Welcome to Squeeze.
# Upload a CSV with curl (GraphiQL cannot attach files):
#   curl http://localhost:4000/graphql -H 'x-graphql-yoga-csrf: 1' \\
#     -F operations='{"query":"mutation($file: Upload!) { uploadCsv(file: $file) { __typename ... on UploadCsvSuccess { request { id } } ... on Error { code message } } }","variables":{"file":null}}' \\
#     -F map='{"0":["variables.file"]}' -F 0=@products.csv
# Then run the operations below (put the request id in the variables).

query RecentRequests {
  requests(first: 10) {
    totalCount
    edges {
      node {
        id
        status
        createdAt
        progress { total done failed cancelled pending }
        outputCsvUrl
      }
    }
  }
}

query OneRequest($id: ID!) {
  request(id: $id) {
    status
    progress { total done failed pending }
    outputCsvUrl
    products(first: 20) {
      edges { node { serialNumber productName inputImageUrls outputImageUrls images { status error { code message } } } }
    }
  }
}

subscription FollowRequest($id: ID!) {
  requestProgress(requestId: $id) {
    status
    progress { total done failed pending }
    image { inputUrl outputUrl status error { code } }
    request { outputCsvUrl }
  }
}
`;
