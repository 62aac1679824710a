"""apigw"""
