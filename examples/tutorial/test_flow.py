"""
Test the UserManager flow directly.
"""
import asyncio
from flowlang import FlowExecutor
from flow import create_task_registry

async def test_user_flow():
    # Load flow definition
    with open('flow.yaml') as f:
        flow_yaml = f.read()

    # Create executor
    registry = create_task_registry()
    executor = FlowExecutor(registry)

    # Test with user_id = 1
    print("Testing user_id = 1...")
    result = await executor.execute_flow(
        flow_yaml,
        inputs={'user_id': 1}
    )

    print("\n✅ Flow executed successfully!")
    print(f"   User: {result['user']['name']} ({result['user']['email']})")
    print(f"   From cache: {result['from_cache']}")
    print(f"   Total views: {result['total_views']}")

    # Run again to test caching
    print("\nTesting again (should use cache)...")
    result2 = await executor.execute_flow(
        flow_yaml,
        inputs={'user_id': 1}
    )

    print(f"   From cache: {result2['from_cache']}")
    print(f"   Cache hit: {'✅' if result2['from_cache'] else '❌'}")

if __name__ == '__main__':
    asyncio.run(test_user_flow())
