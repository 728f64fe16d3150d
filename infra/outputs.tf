output "websocket_url" {
  description = "The URL clients connect to (append ?token=<Cognito JWT>)."
  value       = local.custom_domain_enabled ? "wss://${var.custom_domain_name}/ws" : aws_apigatewayv2_stage.live.invoke_url
}

output "execute_api_websocket_url" {
  description = "The execute-api URL of the stage (works with or without a custom domain)."
  value       = aws_apigatewayv2_stage.live.invoke_url
}

output "management_api_endpoint" {
  description = "API Gateway Management API endpoint (@connections), as given to the handlers in MANAGEMENT_API_ENDPOINT."
  value       = local.management_api_endpoint
}

output "custom_domain_target" {
  description = "With a custom domain and no Route 53 zone: point a CNAME/alias for the domain at this name."
  value       = local.custom_domain_enabled ? aws_apigatewayv2_domain_name.ws[0].domain_name_configuration[0].target_domain_name : null
}

output "lambda_function_names" {
  description = "Function name per route ($connect, $disconnect, $default), and of the reconciler."
  value       = { for key, function in aws_lambda_function.handler : coalesce(local.lambda_functions[key].route_key, key) => function.function_name }
}

output "connections_table_name" {
  description = "DynamoDB failover table (CONNECTIONS_TABLE)."
  value       = aws_dynamodb_table.connections.name
}

output "redis_configuration_endpoint" {
  description = "ElastiCache configuration endpoint (cluster mode, TLS)."
  value       = aws_elasticache_replication_group.redis.configuration_endpoint_address
}

output "redis_auth_secret_arn" {
  description = "Secrets Manager secret holding the Redis AUTH token (REDIS_AUTH_SECRET_ARN)."
  value       = aws_secretsmanager_secret.redis_auth.arn
}

output "alarm_topic_arn" {
  description = "SNS topic the alarms publish to; subscribe your pager to it."
  value       = aws_sns_topic.alarms.arn
}

output "push_function_name" {
  description = "The push function other services invoke (timeline-ws push --function-name, aws lambda invoke --function-name)."
  value       = aws_lambda_function.push.function_name
}
